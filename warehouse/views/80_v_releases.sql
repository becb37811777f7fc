-- Every release of every feature, newest first per feature; `current` marks the one in force.
CREATE OR REPLACE VIEW v_releases AS
SELECT
    r.*,
    r.version = max(r.version) OVER (PARTITION BY r.feature) AS latest_action,
    t.quality AS dev_quality,
    tt.quality AS test_quality,
    t.cost_per_1k_usd,
    t.latency_p95_s
FROM releases r
LEFT JOIN trials t ON t.study_id = r.study_id AND t.trial_id = r.trial_id
LEFT JOIN trials tt ON tt.study_id = r.study_id AND tt.source_trial_id = r.trial_id AND tt.split = 'test'
ORDER BY r.feature, r.version DESC;
