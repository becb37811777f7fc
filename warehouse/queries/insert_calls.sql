-- Bulk insert of call records, one list per column (see warehouse.db.insert_rows).
INSERT INTO calls BY NAME
SELECT
    UNNEST($study_id) AS study_id,
    UNNEST($trial_id) AS trial_id,
    UNNEST($example_id) AS example_id,
    UNNEST($model) AS model,
    UNNEST($settings) AS settings,
    UNNEST($prompt_hash) AS prompt_hash,
    UNNEST($cache_key) AS cache_key,
    UNNEST($output_text) AS output_text,
    UNNEST($prediction) AS prediction,
    UNNEST($score) AS score,
    UNNEST($prompt_tokens) AS prompt_tokens,
    UNNEST($completion_tokens) AS completion_tokens,
    UNNEST($cost_usd) AS cost_usd,
    UNNEST($latency_s) AS latency_s,
    UNNEST($orig_cost_usd) AS orig_cost_usd,
    UNNEST($orig_latency_s) AS orig_latency_s,
    UNNEST($error) AS error,
    UNNEST($cache_hit) AS cache_hit,
    UNNEST($attempts) AS attempts,
    UNNEST($purpose) AS purpose,
    UNNEST($created_at) AS created_at;
