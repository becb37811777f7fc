-- The trials of a study, for resuming it: identity, links and the whole measurement.
SELECT trial_id, role, split, source_trial_id, optuna_number, model, config_hash, feasible, stage, program_hash,
       status, n_examples, quality, quality_ci_low, quality_ci_high, cost_per_1k_usd, latency_p50_s, latency_p95_s,
       latency_p95_ci_low, latency_p95_ci_high, load_avg_min, load_avg_max,
       error_rate, parse_failure_rate, prompt_tokens, completion_tokens, spend_usd, error
FROM trials WHERE study_id = $study_id ORDER BY trial_id;
