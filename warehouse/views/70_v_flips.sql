-- Per study, compared config and held-out example whose correctness changed: the input and both answers.
CREATE OR REPLACE VIEW v_flips AS
SELECT
    f.study_id,
    f.trial_id,
    t.model,
    t.strategy,
    f.example_id,
    f.direction,
    f.input_text,
    f.slices,
    f.incumbent_prediction,
    f.candidate_prediction,
    f.incumbent_score,
    f.candidate_score
FROM flips f
JOIN trials t ON t.study_id = f.study_id AND t.trial_id = f.trial_id;
