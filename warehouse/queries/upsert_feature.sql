-- Register (or refresh) a feature's validated spec.
INSERT INTO features (name, description, spec_path, spec_hash, spec, updated_at)
VALUES ($name, $description, $spec_path, $spec_hash, $spec, now())
ON CONFLICT (name) DO UPDATE SET
    description = excluded.description,
    spec_path = excluded.spec_path,
    spec_hash = excluded.spec_hash,
    spec = excluded.spec,
    updated_at = excluded.updated_at;
