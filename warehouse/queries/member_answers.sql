-- The dev answers of the configs a composite may be built from: every column of their evaluation
-- calls (a confidence column, where calls carry one, comes along).
SELECT * FROM calls
WHERE study_id = $study_id AND list_contains($trial_ids, trial_id) AND purpose = 'eval' AND example_id IS NOT NULL
ORDER BY trial_id, example_id, created_at;
