-- Trials of a study where at least half of the answers could not be parsed, with one such answer
-- (an answer came back, no error, but no prediction could be read from it), and the adapter that
-- read it (NULL: the default, chat for text output).
SELECT t.trial_id, t.split, t.model, t.strategy, t.parse_failure_rate,
       t.settings->>'adapter' AS adapter, t.settings->>'output_mode' AS output_mode,
       (SELECT c.output_text FROM calls c
        WHERE c.study_id = t.study_id AND c.trial_id = t.trial_id AND c.purpose = 'eval'
          AND c.error IS NULL AND c.prediction IS NULL
        ORDER BY c.example_id LIMIT 1) AS example_answer
FROM trials t
WHERE t.study_id = $study_id AND t.parse_failure_rate >= 0.5
ORDER BY t.trial_id;
