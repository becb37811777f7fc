-- What a study has paid so far (all purposes).
SELECT coalesce(sum(cost_usd), 0) FROM calls WHERE study_id = $study_id;
