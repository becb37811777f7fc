-- Every trial of a study, with whether it is on the front (dev) and the test trial that confirms it.
SELECT t.trial_id, t.role, t.split, t.model, t.strategy, t.settings, t.status, t.quality, t.quality_ci_low,
       t.quality_ci_high, t.cost_per_1k_usd, t.latency_p95_s, t.error_rate, t.parse_failure_rate, t.source_trial_id,
       t.program_hash, f.trial_id IS NOT NULL AS on_front
FROM v_trials t
LEFT JOIN v_pareto_front f ON f.study_id = t.study_id AND f.trial_id = t.trial_id
WHERE t.study_id = $study_id
ORDER BY t.trial_id;
