-- Per compiled program: what it cost to make, and the trials that used it (in any study).
CREATE OR REPLACE VIEW v_programs AS
SELECT
    p.compile_key,
    p.program_hash,
    p.feature,
    p.model,
    p.strategy,
    p.strategy_params,
    p.settings,
    p.study_id AS compiled_in_study,
    p.compile_calls,
    p.compile_tokens,
    p.compile_cost_usd,
    p.compile_seconds,
    p.compile_cut,
    p.created_at,
    (SELECT count(*) FROM trials t WHERE t.compile_key = p.compile_key) AS n_trials,
    (SELECT count(*) FROM trials t WHERE t.compile_key = p.compile_key AND t.reused_program) AS n_reuses
FROM programs p;
