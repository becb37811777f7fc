-- Per study and compared config: the discovered slices (groups of inputs where the candidate loses
-- to, or disagrees with, the incumbent more than elsewhere), with the config and the run's rule.
CREATE OR REPLACE VIEW v_discovered_slices AS
SELECT
    d.study_id,
    d.trial_id,
    t.model,
    t.strategy,
    d.source,
    d.slice_id,
    d.signal,
    d.size,
    d.share,
    d.losses,
    d.loss_rate,
    d.loss_ci_low,
    d.loss_ci_high,
    d.outside_loss_rate,
    d.disagreements,
    d.disagree_rate,
    d.disagree_ci_low,
    d.disagree_ci_high,
    d.outside_disagree_rate,
    d.p_value,
    r.threshold,
    r.n_tested,
    d.terms,
    d.member_ids,
    d.examples,
    r.rule
FROM discovered_slices d
JOIN slice_discovery r ON r.study_id = d.study_id AND r.trial_id = d.trial_id AND r.source = d.source
LEFT JOIN trials t ON t.study_id = d.study_id AND t.trial_id = d.trial_id;
