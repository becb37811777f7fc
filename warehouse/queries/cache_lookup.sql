-- The cached responses among a list of keys.
SELECT cache_key, output_text, prompt_tokens, completion_tokens, cost_usd, latency_s
FROM llm_cache
WHERE cache_key IN (SELECT UNNEST($keys));
