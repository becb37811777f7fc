-- Per model, the retirement date in force: a user's notice wins over a provider's API, which
-- wins over litellm's map; among user notices the earliest date (the safe side).
CREATE OR REPLACE VIEW v_deprecations AS
SELECT
    d.*,
    d.retires_on - current_date AS days_left,
    row_number() OVER (
        PARTITION BY d.model
        ORDER BY CASE d.source WHEN 'notice' THEN 0 WHEN 'notices_file' THEN 0 WHEN 'provider_api' THEN 1 ELSE 2 END,
                 d.retires_on
    ) = 1 AS in_force
FROM deprecations d
ORDER BY d.retires_on, d.model, d.source;
