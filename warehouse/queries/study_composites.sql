-- A study's composite candidates: their dev trial and definition.
SELECT trial_id, kind, rule, label, description, members, threshold, definition
FROM composites WHERE study_id = $study_id ORDER BY trial_id;
