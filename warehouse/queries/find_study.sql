-- A study by id: its status (to resume it or refuse), what stopped it and its spend cap.
SELECT id, status, params, stopped_by, max_spend_usd FROM studies WHERE id = $study_id;
