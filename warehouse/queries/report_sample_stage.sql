-- The samples stage of a study (none: the feature has no data.samples, or the study stopped before it).
SELECT * FROM sample_stages WHERE study_id = $study_id;
