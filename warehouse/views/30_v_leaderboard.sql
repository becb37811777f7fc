-- Per study: every dev trial ranked by quality (then cost), with whether it is on the front, its
-- held-out test quality when it was re-evaluated there, and whether the study selected it. A composite
-- (cascade, router: role 'composite') counts as on the front when it was confirmed on test.
CREATE OR REPLACE VIEW v_leaderboard AS
SELECT
    d.study_id,
    d.feature,
    row_number() OVER (PARTITION BY d.study_id ORDER BY d.quality DESC, d.cost_per_1k_usd ASC, d.trial_id) AS rank,
    d.trial_id,
    d.role,
    d.model,
    d.strategy,
    d.settings,
    d.quality AS dev_quality,
    d.quality_ci_low AS dev_ci_low,
    d.quality_ci_high AS dev_ci_high,
    t.quality AS test_quality,
    d.cost_per_1k_usd,
    d.latency_p95_s,
    d.error_rate,
    d.parse_failure_rate,
    f.trial_id IS NOT NULL OR (d.role = 'composite' AND t.trial_id IS NOT NULL) AS on_front,  -- a composite: confirmed on test
    s.selected_trial_id IS NOT DISTINCT FROM d.trial_id AS selected
FROM v_trials d
JOIN studies s ON s.id = d.study_id
LEFT JOIN v_pareto_front f ON f.study_id = d.study_id AND f.trial_id = d.trial_id
LEFT JOIN trials t ON t.study_id = d.study_id AND t.source_trial_id = d.trial_id AND t.split = 'test'
WHERE d.split = 'dev' AND d.status = 'completed';
