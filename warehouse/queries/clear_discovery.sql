-- A study's discovery runs, replaced whole each time they are computed.
DELETE FROM slice_discovery WHERE study_id = $study_id AND source = $source;
