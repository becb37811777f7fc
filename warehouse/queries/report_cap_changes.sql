-- Every change of a study's spend cap: from, to, the spend then, when.
SELECT from_usd, to_usd, spent_usd, changed_at FROM cap_changes WHERE study_id = $study_id ORDER BY changed_at;
