-- Per study and model: how its paid calls went. Errors (after retries), retries, and p95 of the
-- wall time per answered request, retries and their backoff included (cache hits left out).
CREATE OR REPLACE VIEW v_model_health AS
SELECT
    c.study_id,
    c.model,
    count(*) AS n_calls,
    count(*) FILTER (WHERE c.error IS NOT NULL) AS n_errors,
    count(*) FILTER (WHERE c.error IS NOT NULL) / count(*) AS error_rate,
    count(*) FILTER (WHERE c.attempts > 1) AS n_retried,
    count(*) FILTER (WHERE c.attempts > 1) / count(*) AS retried_rate,
    sum(greatest(c.attempts - 1, 0)) AS retries,
    quantile_cont(c.latency_s, 0.95) FILTER (WHERE c.error IS NULL) AS wall_p95_s
FROM calls c
WHERE NOT c.cache_hit AND c.attempts > 0
GROUP BY ALL;
