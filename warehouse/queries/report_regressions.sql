-- The paired comparisons of a study (see v_regressions).
SELECT trial_id, slice_field, slice_value, n, incumbent_quality, candidate_quality, diff, diff_ci_low, diff_ci_high,
       wins, losses, ties, regressed, improved, p_value, test, agreement_rate,
       verdict, adj_confidence, adj_ci_low, adj_ci_high, slices_judged, n_needed, more_needed, detectable_drop
FROM v_regressions WHERE study_id = $study_id ORDER BY trial_id, slice_field, slice_value;
