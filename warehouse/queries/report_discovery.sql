-- The discovery runs of a study: what was tested per config, under which rule, and how many slices passed.
SELECT trial_id, test_trial_id, source, n_inputs, n_clustered, n_tested, threshold, overall_loss_rate, overall_disagree_rate,
       n_found, rule
FROM slice_discovery WHERE study_id = $study_id ORDER BY trial_id, source;
