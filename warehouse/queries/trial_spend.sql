-- A trial that did not complete (interrupted, stopped by the cap, failed) is charged what its
-- evaluation calls cost, from the ledger (answers at their cost, unanswered requests at their worst case).
UPDATE trials t SET spend_usd = s.spend_usd
FROM (
    SELECT i.trial_id,
           sum(coalesce(a.cost_usd, CASE WHEN f.seq IS NULL THEN i.worst_usd ELSE 0 END)) AS spend_usd
    FROM ledger i
    LEFT JOIN ledger a ON a.journal = i.journal AND a.intent_seq = i.seq AND a.kind = 'answer'
    LEFT JOIN ledger f ON f.journal = i.journal AND f.intent_seq = i.seq AND f.kind = 'failed'
    WHERE i.kind = 'intent' AND i.study_id = $study_id AND i.purpose = 'eval'
    GROUP BY i.trial_id
) s
WHERE t.study_id = $study_id AND t.trial_id = s.trial_id AND t.status NOT IN ('completed', 'pruned', 'running');
