-- Per study: what the ledger records as spent. `paid_usd`: the paid answers' real cost;
-- `unresolved_usd`: requests sent with no answer or failure on record (a killed process), at
-- their worst case; `spend_usd` = both: at least what the providers billed.
CREATE OR REPLACE VIEW v_ledger_spend AS
SELECT
    i.study_id,
    count(*) AS n_requests,
    count(a.seq) AS n_answers,
    count(*) FILTER (WHERE a.seq IS NULL AND f.seq IS NULL) AS n_unresolved,
    coalesce(sum(a.cost_usd), 0) AS paid_usd,
    coalesce(sum(i.worst_usd) FILTER (WHERE a.seq IS NULL AND f.seq IS NULL), 0) AS unresolved_usd,
    coalesce(sum(a.cost_usd), 0) + coalesce(sum(i.worst_usd) FILTER (WHERE a.seq IS NULL AND f.seq IS NULL), 0) AS spend_usd
FROM ledger i
LEFT JOIN ledger a ON a.journal = i.journal AND a.intent_seq = i.seq AND a.kind = 'answer'
LEFT JOIN ledger f ON f.journal = i.journal AND f.intent_seq = i.seq AND f.kind = 'failed'
WHERE i.kind = 'intent'
GROUP BY i.study_id;
