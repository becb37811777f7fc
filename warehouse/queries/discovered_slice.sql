-- One discovered slice of a study, with the feature it belongs to (for `offramp slices save`).
SELECT d.slice_id, d.trial_id, d.source, d.signal, d.size, d.member_ids, s.feature, f.spec_path
FROM discovered_slices d
JOIN studies s ON s.id = d.study_id
LEFT JOIN features f ON f.name = s.feature
WHERE d.study_id = $study_id AND d.slice_id = $slice_id;
