-- A study's discovered slices, replaced whole each time they are computed (see clear_discovery.sql).
DELETE FROM discovered_slices WHERE study_id = $study_id AND source = $source;
