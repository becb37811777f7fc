-- Per samples trial: its config, agreement with what the incumbent served (overall, 95% CI from the
-- trial) and in the first and second half of the sample by time, and the stage's row.
SELECT a.trial_id, a.source_trial_id, t.role, t.model, t.strategy, t.status, t.quality AS agreement,
       t.quality_ci_low AS agreement_ci_low, t.quality_ci_high AS agreement_ci_high, t.spend_usd,
       a.n, a.first_half, a.second_half, a.n_first, a.n_second
FROM (
    SELECT trial_id, any_value(source_trial_id) AS source_trial_id, count(*) AS n,
           avg(agreement) FILTER (WHERE half = 1) AS first_half, avg(agreement) FILTER (WHERE half = 2) AS second_half,
           count(*) FILTER (WHERE half = 1) AS n_first, count(*) FILTER (WHERE half = 2) AS n_second
    FROM (SELECT *, CASE WHEN logged_at IS NULL THEN NULL
                         ELSE ntile(2) OVER (PARTITION BY trial_id ORDER BY logged_at, sample_id) END AS half
          FROM sample_answers WHERE study_id = $study_id)
    GROUP BY trial_id
) a
JOIN trials t ON t.study_id = $study_id AND t.trial_id = a.trial_id
ORDER BY (t.role = 'incumbent') DESC, a.trial_id;
