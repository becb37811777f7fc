-- Per judged trial of a study (metric.judge): how its answers were judged. `answers`: examples
-- judged; `judge_calls`: judge answers asked for; `unparsed`: judge answers that did not parse;
-- `failed`: judge calls that failed (refused by the spend cap included); wins/ties/losses: the
-- pairwise outcomes (NULL for a rubric); `unjudged`: examples left without a verdict (scored 0).
SELECT j.trial_id, t.split, t.role, t.model, t.strategy, min(j.mode) AS mode, min(j.judge_model) AS judge_model,
       count(DISTINCT j.example_id) AS answers,
       count(*) FILTER (WHERE j.cache_key IS NOT NULL) AS judge_calls,
       count(*) FILTER (WHERE j.cache_key IS NOT NULL AND j.error IS NULL AND j.verdict IS NULL) AS unparsed,
       count(*) FILTER (WHERE j.error IS NOT NULL) AS failed,
       count(DISTINCT j.example_id) FILTER (WHERE j.outcome = 'win') AS wins,
       count(DISTINCT j.example_id) FILTER (WHERE j.outcome = 'tie') AS ties,
       count(DISTINCT j.example_id) FILTER (WHERE j.outcome = 'loss') AS losses,
       count(DISTINCT j.example_id) FILTER (WHERE j.verdict IS NULL) AS unjudged
FROM judgements j
LEFT JOIN trials t ON t.study_id = j.study_id AND t.trial_id = j.trial_id
WHERE j.study_id = $study_id AND j.trial_id IS NOT NULL  -- the calibration items: table judge_calibrations
GROUP BY j.trial_id, t.split, t.role, t.model, t.strategy
ORDER BY j.trial_id;
