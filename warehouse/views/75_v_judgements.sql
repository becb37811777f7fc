-- What the judge said, per judged trial and example: one row per judge answer, with the judged
-- trial's model and strategy, and whether the answer parsed. `offramp sql "select * from v_judgements"`.
CREATE OR REPLACE VIEW v_judgements AS
SELECT
    j.study_id,
    j.trial_id,
    t.role,
    t.split,
    t.model,
    t.strategy,
    j.example_id,
    j.mode,
    j."order",
    j.criterion,
    j.verdict,
    j.score,
    j.example_score,
    j.outcome,
    j.cache_key IS NOT NULL AS called,
    j.cache_key IS NOT NULL AND j.verdict IS NULL AND j.error IS NULL AS unparsed,
    j.error,
    j.raw_answer,
    j.judge_model,
    j.created_at
FROM judgements j
LEFT JOIN trials t ON t.study_id = j.study_id AND t.trial_id = j.trial_id;
