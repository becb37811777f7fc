-- A study ends: completed or failed, with its selection.
UPDATE studies
SET status = $status, finished_at = now(), error = $error, selected_trial_id = $selected_trial_id, selection = $selection,
    stopped_by = $stopped_by
WHERE id = $id;
