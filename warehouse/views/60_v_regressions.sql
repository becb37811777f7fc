-- Per study, compared config and slice: how it does against the incumbent on the held-out split.
-- slice_field IS NULL is the overall row. `worse` = the whole interval is below zero.
-- `verdict` (slices): not_worse | worse | too_few | not_judged against the policy's max_slice_drop, on the
-- interval at `adj_confidence` (Bonferroni over `slices_judged`); `more_needed`: examples that would decide a too_few.
-- `detectable_drop`: what the test split could tell before the study paid (slice_power).
CREATE OR REPLACE VIEW v_regressions AS
SELECT
    c.study_id,
    s.feature,
    c.trial_id,
    t.model,
    t.strategy,
    coalesce(c.slice_field, '(all)') AS slice_field,
    coalesce(c.slice_value, '(all)') AS slice_value,
    c.n,
    c.incumbent_quality,
    c.candidate_quality,
    c.diff,
    c.diff_ci_low,
    c.diff_ci_high,
    c.diff_ci_high < 0 AS worse,
    c.diff_ci_low > 0 AS better,
    c.wins, c.losses, c.ties, c.regressed, c.improved,
    c.p_value,
    c.test,
    c.agreement_rate,
    c.verdict,
    c.adj_confidence,
    c.adj_ci_low,
    c.adj_ci_high,
    c.slices_judged,
    c.n_needed,
    c.n_needed - c.n AS more_needed,
    p.detectable_drop
FROM comparisons c
JOIN studies s ON s.id = c.study_id
JOIN trials t ON t.study_id = c.study_id AND t.trial_id = c.trial_id
LEFT JOIN slice_power p ON p.study_id = c.study_id AND p.slice_field IS NOT DISTINCT FROM c.slice_field
    AND p.slice_value IS NOT DISTINCT FROM c.slice_value;
