-- The trials of a study, for resuming it.
SELECT trial_id, role, split, source_trial_id, optuna_number, status, config_hash, quality, quality_ci_low, quality_ci_high,
       cost_per_1k_usd, latency_p95_s, error_rate, parse_failure_rate, feasible, stage, program_hash, error
FROM trials WHERE study_id = $study_id ORDER BY trial_id;
