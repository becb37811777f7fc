-- Bulk insert of discovered slices.
INSERT INTO discovered_slices BY NAME
SELECT
    UNNEST($study_id) AS study_id,
    UNNEST($trial_id) AS trial_id,
    UNNEST($source) AS source,
    UNNEST($slice_id) AS slice_id,
    UNNEST($signal) AS signal,
    UNNEST($size) AS size,
    UNNEST($share) AS share,
    UNNEST($losses) AS losses,
    UNNEST($loss_rate) AS loss_rate,
    UNNEST($loss_ci_low) AS loss_ci_low,
    UNNEST($loss_ci_high) AS loss_ci_high,
    UNNEST($outside_loss_rate) AS outside_loss_rate,
    UNNEST($disagreements) AS disagreements,
    UNNEST($disagree_rate) AS disagree_rate,
    UNNEST($disagree_ci_low) AS disagree_ci_low,
    UNNEST($disagree_ci_high) AS disagree_ci_high,
    UNNEST($outside_disagree_rate) AS outside_disagree_rate,
    UNNEST($p_value) AS p_value,
    UNNEST($terms) AS terms,
    UNNEST($member_ids) AS member_ids,
    UNNEST($examples) AS examples;
