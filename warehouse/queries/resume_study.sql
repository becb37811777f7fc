-- A study is resumed: running again; trials a crash left running are marked failed (interrupted).
UPDATE studies SET status = 'running', finished_at = NULL, error = NULL WHERE id = $study_id;
