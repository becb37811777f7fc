-- A study starts.
INSERT INTO studies (id, feature, deprecated_model, incumbent_model, trigger, space_name, space, params, seed, max_spend_usd, optuna_storage, started_at, status)
VALUES ($id, $feature, $deprecated_model, $incumbent_model, $trigger, $space_name, $space, $params, $seed, $max_spend_usd, $optuna_storage, now(), 'running');
