-- What a source says now about a model's retirement (first_seen kept on conflict).
INSERT INTO deprecations (model, source, retires_on, replacement, source_ref, first_seen, last_seen)
SELECT model, source, retires_on, replacement, source_ref, now(), now()
FROM (SELECT UNNEST($model) AS model, UNNEST($source) AS source, UNNEST($retires_on)::DATE AS retires_on,
             UNNEST($replacement) AS replacement, UNNEST($source_ref) AS source_ref)
ON CONFLICT (model, source) DO UPDATE SET
    retires_on = excluded.retires_on,
    replacement = excluded.replacement,
    source_ref = excluded.source_ref,
    last_seen = excluded.last_seen;
