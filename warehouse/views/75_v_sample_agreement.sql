-- Per study, samples trial and production sample: the input, what the incumbent served, the
-- config's answer and their agreement (1 = same answer); the config's role, model and strategy.
CREATE OR REPLACE VIEW v_sample_agreement AS
SELECT
    a.study_id,
    a.trial_id,
    a.source_trial_id,
    t.role,
    t.model,
    t.strategy,
    a.sample_id,
    a.logged_at,
    a.input_text,
    a.served,
    a.prediction,
    a.agreement
FROM sample_answers a
JOIN trials t ON t.study_id = a.study_id AND t.trial_id = a.trial_id;
