-- Bulk insert of flipped examples.
INSERT INTO flips BY NAME
SELECT
    UNNEST($study_id) AS study_id,
    UNNEST($trial_id) AS trial_id,
    UNNEST($example_id) AS example_id,
    UNNEST($direction) AS direction,
    UNNEST($input_text) AS input_text,
    UNNEST($slices) AS slices,
    UNNEST($incumbent_prediction) AS incumbent_prediction,
    UNNEST($candidate_prediction) AS candidate_prediction,
    UNNEST($incumbent_score) AS incumbent_score,
    UNNEST($candidate_score) AS candidate_score;
