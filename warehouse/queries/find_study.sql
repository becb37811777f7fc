-- A study by id: its status (to resume it or refuse).
SELECT id, status, params FROM studies WHERE id = $study_id;
