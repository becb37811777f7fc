-- Bulk insert of a composite trial's requests: the branch that answered, the final answer, the calls' sums.
INSERT OR REPLACE INTO composite_answers BY NAME
SELECT
    UNNEST($study_id) AS study_id,
    UNNEST($trial_id) AS trial_id,
    UNNEST($example_id) AS example_id,
    UNNEST($branch) AS branch,
    UNNEST($member_trial_id) AS member_trial_id,
    UNNEST($score) AS score,
    UNNEST($prediction) AS prediction,
    UNNEST($cost_usd) AS cost_usd,
    UNNEST($latency_s) AS latency_s,
    UNNEST($calls) AS calls;
