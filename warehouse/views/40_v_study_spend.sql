-- Per study: calls made, cache hits, tokens, and what the study actually paid, by purpose.
CREATE OR REPLACE VIEW v_study_spend AS
SELECT
    s.id AS study_id,
    s.feature,
    s.status,
    c.purpose,
    count(*) AS n_calls,
    count(*) FILTER (WHERE c.cache_hit) AS n_cache_hits,
    count(*) FILTER (WHERE c.error IS NOT NULL) AS n_errors,
    sum(c.prompt_tokens) AS prompt_tokens,
    sum(c.completion_tokens) AS completion_tokens,
    sum(c.cost_usd) AS spend_usd,
    sum(c.orig_cost_usd) FILTER (WHERE c.cache_hit) AS saved_by_cache_usd
FROM studies s
JOIN calls c ON c.study_id = s.id
GROUP BY ALL;
