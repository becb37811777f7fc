-- What a promote needs about a dev trial: its config, program, whether it is on the front (a composite:
-- whether it was confirmed on test), its numbers.
SELECT t.trial_id, t.role, t.split, t.model, t.strategy, t.settings, t.status, t.program_hash, t.compile_key,
       t.quality, t.cost_per_1k_usd, t.latency_p95_s, s.feature, s.selected_trial_id, s.selection, s.space,
       f.trial_id IS NOT NULL OR (t.role = 'composite' AND tt.trial_id IS NOT NULL) AS on_front, p.program, p.strategy_params,
       tt.quality AS test_quality, r.diff, r.diff_ci_low, r.diff_ci_high
FROM trials t
JOIN studies s ON s.id = t.study_id
LEFT JOIN v_pareto_front f ON f.study_id = t.study_id AND f.trial_id = t.trial_id
LEFT JOIN programs p ON p.compile_key = t.compile_key
LEFT JOIN trials tt ON tt.study_id = t.study_id AND tt.source_trial_id = t.trial_id AND tt.split = 'test'
LEFT JOIN comparisons r ON r.study_id = t.study_id AND r.trial_id = t.trial_id AND r.slice_field IS NULL
WHERE t.study_id = $study_id AND t.trial_id = $trial_id;
