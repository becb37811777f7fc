-- Bulk insert of discovery runs.
INSERT INTO slice_discovery BY NAME
SELECT
    UNNEST($study_id) AS study_id,
    UNNEST($trial_id) AS trial_id,
    UNNEST($test_trial_id) AS test_trial_id,
    UNNEST($source) AS source,
    UNNEST($n_inputs) AS n_inputs,
    UNNEST($n_clustered) AS n_clustered,
    UNNEST($n_tested) AS n_tested,
    UNNEST($threshold) AS threshold,
    UNNEST($overall_loss_rate) AS overall_loss_rate,
    UNNEST($overall_disagree_rate) AS overall_disagree_rate,
    UNNEST($n_found) AS n_found,
    UNNEST($rule) AS rule;
