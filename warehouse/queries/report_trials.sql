-- Every trial of a study with its measurement, whether it is on the front (dev), and the test
-- trial that confirms it. A composite (cascade, router) counts as on the front when it was confirmed on test.
SELECT t.trial_id, t.role, t.split, t.model, t.strategy, t.settings, t.source_trial_id, t.optuna_number, t.stage,
       t.program_hash, t.status, t.n_examples, t.quality, t.quality_ci_low, t.quality_ci_high, t.cost_per_1k_usd,
       t.latency_p50_s, t.latency_p95_s, t.latency_p95_ci_low, t.latency_p95_ci_high, t.load_avg_min, t.load_avg_max,
       t.error_rate, t.parse_failure_rate, t.prompt_tokens, t.completion_tokens, t.spend_usd, t.error,
       f.trial_id IS NOT NULL OR (t.role = 'composite' AND t.split = 'dev' AND EXISTS (
           SELECT 1 FROM trials x WHERE x.study_id = t.study_id AND x.source_trial_id = t.trial_id)) AS on_front
FROM v_trials t
LEFT JOIN v_pareto_front f ON f.study_id = t.study_id AND f.trial_id = t.trial_id
WHERE t.study_id = $study_id
ORDER BY t.trial_id;
