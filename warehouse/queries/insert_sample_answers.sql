-- Bulk insert of one samples trial's answers with their agreement with what was served.
INSERT INTO sample_answers BY NAME
SELECT
    UNNEST($study_id) AS study_id,
    UNNEST($trial_id) AS trial_id,
    UNNEST($source_trial_id) AS source_trial_id,
    UNNEST($sample_id) AS sample_id,
    UNNEST($logged_at) AS logged_at,
    UNNEST($input_text) AS input_text,
    UNNEST($served) AS served,
    UNNEST($prediction) AS prediction,
    UNNEST($agreement) AS agreement;
