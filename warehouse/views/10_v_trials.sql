-- One row per trial with its objectives and its calls' totals.
CREATE OR REPLACE VIEW v_trials AS
SELECT
    t.study_id,
    s.feature,
    t.trial_id,
    t.role,
    t.split,
    t.source_trial_id,
    t.model,
    t.strategy,
    t.settings,
    t.program_hash,
    t.reused_program,
    p.compile_cost_usd,
    p.compile_calls,
    p.compile_seconds,
    t.status,
    t.n_examples,
    t.quality,
    t.quality_ci_low,
    t.quality_ci_high,
    t.cost_per_1k_usd,
    t.latency_p50_s,
    t.latency_p95_s,
    t.error_rate,
    t.parse_failure_rate,
    t.prompt_tokens,
    t.completion_tokens,
    t.spend_usd,
    (SELECT count(*) FROM calls c WHERE c.study_id = t.study_id AND c.trial_id = t.trial_id) AS n_calls,
    (SELECT count(*) FROM calls c WHERE c.study_id = t.study_id AND c.trial_id = t.trial_id AND c.cache_hit) AS n_cache_hits,
    t.config_hash,
    t.started_at,
    t.finished_at,
    t.error
FROM trials t
JOIN studies s ON s.id = t.study_id
LEFT JOIN programs p ON p.compile_key = t.compile_key;
