-- The study a report is about.
SELECT id, feature, status, deprecated_model, incumbent_model, space_name, started_at, finished_at, selected_trial_id,
       selection, policy, stopped_by, error
FROM studies WHERE id = $study_id;
