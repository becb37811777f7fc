-- See clear_evidence.sql.
DELETE FROM flips WHERE study_id = $study_id;
