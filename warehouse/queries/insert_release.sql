-- A release pinned (promote) or re-pinned (rollback).
INSERT INTO releases (feature, version, action, study_id, trial_id, model, strategy, program_hash, path, forced, created_at)
VALUES ($feature, $version, $action, $study_id, $trial_id, $model, $strategy, $program_hash, $path, $forced, now());
