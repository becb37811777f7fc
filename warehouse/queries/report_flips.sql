-- The flipped examples of a study (see v_flips).
SELECT trial_id, example_id, direction, input_text, incumbent_prediction, candidate_prediction
FROM v_flips WHERE study_id = $study_id ORDER BY trial_id, direction DESC, example_id;
