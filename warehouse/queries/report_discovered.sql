-- The discovered slices of a study (see v_discovered_slices), most significant first per config.
SELECT trial_id, model, strategy, source, slice_id, signal, size, share, losses, loss_rate, loss_ci_low, loss_ci_high,
       outside_loss_rate, disagreements, disagree_rate, disagree_ci_low, disagree_ci_high, outside_disagree_rate, p_value,
       terms, member_ids, examples
FROM v_discovered_slices WHERE study_id = $study_id ORDER BY trial_id, source, p_value, slice_id;
