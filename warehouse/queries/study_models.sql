-- A study's models: endpoint, price source, preflight outcome.
SELECT model, litellm_id, api_base, role, price_source, preflight, parsed, note
FROM study_models WHERE study_id = $study_id ORDER BY role DESC, model;
