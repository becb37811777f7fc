-- Bulk insert of judge verdicts (tasks/feature/judge.py).
INSERT INTO judgements BY NAME
SELECT
    UNNEST($study_id) AS study_id,
    UNNEST($trial_id) AS trial_id,
    UNNEST($example_id) AS example_id,
    UNNEST($mode) AS mode,
    UNNEST($order) AS "order",
    UNNEST($criterion) AS criterion,
    UNNEST($verdict) AS verdict,
    UNNEST($raw_answer) AS raw_answer,
    UNNEST($error) AS error,
    UNNEST($cache_key) AS cache_key,
    UNNEST($score) AS score,
    UNNEST($example_score) AS example_score,
    UNNEST($outcome) AS outcome,
    UNNEST($judge_model) AS judge_model,
    UNNEST($created_at) AS created_at;
