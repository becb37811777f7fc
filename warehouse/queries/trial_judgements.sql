-- A judged trial's verdicts, one row per judge answer (tasks/feature/judge.py `judged_verdicts`).
SELECT example_id, mode, "order", criterion, verdict, score, example_score, outcome
FROM judgements
WHERE study_id = $study_id AND trial_id = $trial_id
ORDER BY example_id, "order", criterion;
