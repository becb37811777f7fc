-- Store a compiled program (a later request for the same compile key reuses it).
INSERT INTO programs (compile_key, program_hash, feature, model, strategy, strategy_params, settings, train_size, seed,
                      program, study_id, trial_id, compile_calls, compile_tokens, compile_cost_usd, compile_seconds, compile_cut,
                      created_at)
VALUES ($compile_key, $program_hash, $feature, $model, $strategy, $strategy_params, $settings, $train_size, $seed,
        $program, $study_id, $trial_id, $compile_calls, $compile_tokens, $compile_cost_usd, $compile_seconds, $compile_cut, now())
ON CONFLICT DO NOTHING;
