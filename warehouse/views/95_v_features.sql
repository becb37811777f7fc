-- The feature registry (refreshed by every study and every deprecation watch): each feature's
-- incumbent model, its current release, and the retirement date in force for the incumbent model.
CREATE OR REPLACE VIEW v_features AS
SELECT
    f.name,
    f.description,
    f.spec_path,
    f.spec->>'$.incumbent.model' AS incumbent_model,
    r.model AS release_model,
    r.version AS release_version,
    r.study_id AS release_study_id,
    d.retires_on AS incumbent_retires_on,
    d.days_left AS incumbent_days_left,
    d.source AS retirement_source,
    f.updated_at
FROM features f
LEFT JOIN (
    SELECT * FROM releases QUALIFY row_number() OVER (PARTITION BY feature ORDER BY version DESC) = 1
) r ON r.feature = f.name
LEFT JOIN v_deprecations d ON d.model = f.spec->>'$.incumbent.model' AND d.in_force
ORDER BY f.name;
