INSERT INTO deprecation_events (event_id, feature, model, retires_on, replacement, source, days_left, horizon_days, api_url, emitted_at)
VALUES ($event_id, $feature, $model, $retires_on::DATE, $replacement, $source, $days_left, $horizon_days, $api_url, now());
