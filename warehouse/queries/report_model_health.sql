-- How each model's paid calls of a study went (see v_model_health).
SELECT model, n_calls, n_errors, error_rate, n_retried, retried_rate, retries, wall_p95_s
FROM v_model_health WHERE study_id = $study_id ORDER BY model;
