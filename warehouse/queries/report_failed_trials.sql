-- Trials of a study that failed or whose calls failed (after retries), with their main error:
-- the kind of error most of its failed calls had (the exception's name, before the first ':').
-- Kept: the failed ones and those whose error rate is above the study's --max-error-rate.
WITH kinds AS (
    SELECT trial_id, split_part(error, ':', 1) AS kind, count(*) AS n, min(error) AS example
    FROM calls WHERE study_id = $study_id AND error IS NOT NULL AND trial_id IS NOT NULL
    GROUP BY ALL
), per_trial AS (
    SELECT trial_id, arg_max(kind, n) AS main_error, arg_max(example, n) AS example_error, sum(n) AS n_errors
    FROM kinds GROUP BY trial_id
), calls_per_trial AS (
    SELECT trial_id, count(*) AS n_calls FROM calls WHERE study_id = $study_id AND trial_id IS NOT NULL GROUP BY trial_id
)
SELECT t.trial_id, t.role, t.split, t.model, t.strategy, t.status, t.error_rate, t.error,
       coalesce(c.n_calls, 0) AS n_calls, coalesce(p.n_errors, 0) AS n_errors, p.main_error, p.example_error
FROM trials t
JOIN studies s ON s.id = t.study_id
LEFT JOIN per_trial p ON p.trial_id = t.trial_id
LEFT JOIN calls_per_trial c ON c.trial_id = t.trial_id
WHERE t.study_id = $study_id
  AND (t.status IN ('failed', 'provider_down')
       OR t.error_rate > coalesce(TRY_CAST(json_extract(s.params, '$.max_error_rate') AS DOUBLE), 0.2))
ORDER BY t.trial_id;
