-- Bulk insert of journal lines; a line already ingested (same journal and seq) is kept as it was.
INSERT INTO ledger BY NAME
SELECT
    UNNEST($journal) AS journal,
    UNNEST($seq) AS seq,
    UNNEST($kind) AS kind,
    UNNEST($intent_seq) AS intent_seq,
    UNNEST($study_id) AS study_id,
    UNNEST($trial_id) AS trial_id,
    UNNEST($purpose) AS purpose,
    UNNEST($model) AS model,
    UNNEST($cache_key) AS cache_key,
    UNNEST($worst_usd) AS worst_usd,
    UNNEST($cost_usd) AS cost_usd,
    UNNEST($prompt_tokens) AS prompt_tokens,
    UNNEST($completion_tokens) AS completion_tokens,
    UNNEST($created_at) AS created_at
ON CONFLICT DO NOTHING;
