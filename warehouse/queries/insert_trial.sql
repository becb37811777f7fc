-- A trial starts.
INSERT INTO trials (study_id, trial_id, role, split, source_trial_id, config_hash, model, settings, strategy, compile_key, optuna_number, status, started_at)
VALUES ($study_id, $trial_id, $role, $split, $source_trial_id, $config_hash, $model, $settings, $strategy, $compile_key, $optuna_number, 'running', now());
