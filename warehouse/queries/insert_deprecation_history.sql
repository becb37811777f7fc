INSERT INTO deprecation_history (model, source, change, retires_on, previous_retires_on, replacement, source_ref, seen_at)
SELECT UNNEST($model), UNNEST($source), UNNEST($change), UNNEST($retires_on)::DATE, UNNEST($previous_retires_on)::DATE,
       UNNEST($replacement), UNNEST($source_ref), now();
