-- A study's power table is replaced whenever it is recomputed (start, then after the incumbent's dev run).
DELETE FROM slice_power WHERE study_id = $study_id;
