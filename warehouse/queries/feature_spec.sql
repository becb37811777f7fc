-- A feature's registered spec.
SELECT spec, spec_path FROM features WHERE name = $name;
