-- A study's models as its (latest) preflight found them; a resumed study's preflight replaces them.
INSERT OR REPLACE INTO study_models BY NAME
SELECT
    UNNEST($study_id) AS study_id,
    UNNEST($model) AS model,
    UNNEST($litellm_id) AS litellm_id,
    UNNEST($api_base) AS api_base,
    UNNEST($role) AS role,
    UNNEST($price_source) AS price_source,
    UNNEST($preflight) AS preflight,
    UNNEST($parsed) AS parsed,
    UNNEST($note) AS note;
