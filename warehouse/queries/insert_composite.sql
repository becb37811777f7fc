-- A composite candidate's definition (its dev trial is in `trials`).
INSERT OR REPLACE INTO composites (study_id, trial_id, kind, rule, label, description, members, threshold, definition, created_at)
VALUES ($study_id, $trial_id, $kind, $rule, $label, $description, $members, $threshold, $definition, now());
