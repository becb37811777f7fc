-- Bulk insert of a study's power table (tasks/evidence/verdicts.py: power_table).
INSERT INTO slice_power BY NAME
SELECT
    UNNEST($study_id) AS study_id,
    UNNEST($slice_field) AS slice_field,
    UNNEST($slice_value) AS slice_value,
    UNNEST($n) AS n,
    UNNEST($judged) AS judged,
    UNNEST($slices_judged) AS slices_judged,
    UNNEST($confidence) AS confidence,
    UNNEST($discordance) AS discordance,
    UNNEST($assumption) AS assumption,
    UNNEST($detectable_drop) AS detectable_drop,
    UNNEST($target_drop) AS target_drop,
    UNNEST($n_needed) AS n_needed,
    UNNEST($more_needed) AS more_needed;
