-- A study's money: its cap, what the ledger records as spent (paid answers + unanswered requests
-- at their worst case), and by how much the spend went over the cap (a provider billing more than
-- the worst case).
SELECT s.max_spend_usd AS cap_usd,
       coalesce(l.spend_usd, 0) AS spend_usd,
       coalesce(l.paid_usd, 0) AS paid_usd,
       coalesce(l.unresolved_usd, 0) AS unresolved_usd,
       coalesce(l.n_unresolved, 0) AS n_unresolved,
       CASE WHEN s.max_spend_usd IS NULL THEN 0 ELSE greatest(0, coalesce(l.spend_usd, 0) - s.max_spend_usd) END AS overshoot_usd
FROM studies s LEFT JOIN v_ledger_spend l ON l.study_id = s.id
WHERE s.id = $study_id;
