-- offramp's own tuned models of a study (strategy `tuned`): what each learned from and what training cost.
SELECT t.trial_id, p.program_hash,
       CAST(json_extract(p.program, '$.gold_labels') AS INTEGER) AS gold_labels,
       CAST(json_extract(p.program, '$.taught_labels') AS INTEGER) AS taught_labels,
       CAST(json_extract(p.program, '$.unlabeled_inputs') AS INTEGER) AS unlabeled_inputs,
       p.compile_cost_usd, p.compile_seconds, t.reused_program
FROM trials t JOIN programs p ON p.compile_key = t.compile_key
WHERE t.study_id = $study_id AND t.strategy = 'tuned' AND t.split = 'dev'
ORDER BY t.trial_id;
