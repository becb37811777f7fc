-- What a study has spent so far, from the ledger (paid answers + unanswered requests at their worst case).
SELECT coalesce((SELECT spend_usd FROM v_ledger_spend WHERE study_id = $study_id), 0);
