-- Per composite trial (dev and test): how often each branch answered, and what the requests cost.
SELECT c.trial_id AS composite_trial_id, c.label, c.description, t.trial_id, t.split, a.branch,
       count(*) AS n, count(*) / sum(count(*)) OVER (PARTITION BY t.trial_id) AS share,
       avg(a.calls) AS calls_per_request
FROM composites c
JOIN trials t ON t.study_id = c.study_id AND (t.trial_id = c.trial_id OR t.source_trial_id = c.trial_id)
JOIN composite_answers a ON a.study_id = t.study_id AND a.trial_id = t.trial_id
WHERE c.study_id = $study_id
GROUP BY ALL
ORDER BY c.trial_id, t.split, a.branch;
