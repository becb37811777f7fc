-- A study's judge calibration, if measured.
SELECT * EXCLUDE (created_at) FROM judge_calibrations WHERE study_id = $study_id;
