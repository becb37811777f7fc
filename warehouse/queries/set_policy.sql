-- The selection policy a study applies.
UPDATE studies SET policy = $policy WHERE id = $study_id;
