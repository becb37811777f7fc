-- A study's spend cap changes (recorded for the report), and the study's cap becomes the new one.
INSERT INTO cap_changes (study_id, from_usd, to_usd, spent_usd, changed_at) VALUES ($study_id, $from_usd, $to_usd, $spent_usd, now());
