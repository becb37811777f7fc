-- A study stopped on request (SIGINT/SIGTERM): the trials it was running say so; a rerun resumes them.
UPDATE trials SET status = 'interrupted', error = $error, finished_at = now()
WHERE study_id = $study_id AND status = 'running';
