-- What the test split could tell before the study paid: overall first, then each declared slice.
SELECT slice_field, slice_value, n, judged, slices_judged, confidence, discordance, assumption, detectable_drop,
       target_drop, n_needed, more_needed
FROM slice_power WHERE study_id = $study_id ORDER BY slice_field NULLS FIRST, slice_value;
