-- A trial's answer per example (evaluation calls; a composite's final answers).
SELECT example_id, score, prediction FROM calls
WHERE study_id = $study_id AND trial_id = $trial_id AND purpose = 'eval' AND example_id IS NOT NULL
UNION ALL
SELECT example_id, score, prediction FROM composite_answers
WHERE study_id = $study_id AND trial_id = $trial_id;
