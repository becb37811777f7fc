-- What a study spent, by purpose (see v_study_spend).
SELECT purpose, n_calls, n_cache_hits, n_errors, spend_usd FROM v_study_spend WHERE study_id = $study_id ORDER BY purpose;
