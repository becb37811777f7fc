-- Per composite trial (dev and test): how often each branch answered, and the calls a request made.
WITH counts AS (
    SELECT c.trial_id AS composite_trial_id, c.label, c.description, t.trial_id, t.split, a.branch,
           count(*) AS n, avg(a.calls) AS calls_per_request
    FROM composites c
    JOIN trials t ON t.study_id = c.study_id AND (t.trial_id = c.trial_id OR t.source_trial_id = c.trial_id)
    JOIN composite_answers a ON a.study_id = t.study_id AND a.trial_id = t.trial_id
    WHERE c.study_id = $study_id
    GROUP BY c.trial_id, c.label, c.description, t.trial_id, t.split, a.branch
)
SELECT *, n / sum(n) OVER (PARTITION BY trial_id) AS share FROM counts
ORDER BY composite_trial_id, split, branch;
