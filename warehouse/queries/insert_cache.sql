-- Bulk insert of cache entries; an entry already cached (same key) is kept as it was.
INSERT INTO llm_cache BY NAME
SELECT
    UNNEST($cache_key) AS cache_key,
    UNNEST($model) AS model,
    UNNEST($request) AS request,
    UNNEST($output_text) AS output_text,
    UNNEST($prompt_tokens) AS prompt_tokens,
    UNNEST($completion_tokens) AS completion_tokens,
    UNNEST($cost_usd) AS cost_usd,
    UNNEST($latency_s) AS latency_s,
    UNNEST($created_at) AS created_at
ON CONFLICT DO NOTHING;
