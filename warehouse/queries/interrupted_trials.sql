-- Trials a crash left running are failed, and say so.
UPDATE trials SET status = 'failed', error = 'interrupted (the process stopped mid-trial); its Optuna trial is re-run', finished_at = now()
WHERE study_id = $study_id AND status = 'running';
