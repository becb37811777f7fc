-- Bulk insert of paired comparisons (overall and per slice).
INSERT INTO comparisons BY NAME
SELECT
    UNNEST($study_id) AS study_id,
    UNNEST($trial_id) AS trial_id,
    UNNEST($test_trial_id) AS test_trial_id,
    UNNEST($slice_field) AS slice_field,
    UNNEST($slice_value) AS slice_value,
    UNNEST($n) AS n,
    UNNEST($incumbent_quality) AS incumbent_quality,
    UNNEST($candidate_quality) AS candidate_quality,
    UNNEST($diff) AS diff,
    UNNEST($diff_ci_low) AS diff_ci_low,
    UNNEST($diff_ci_high) AS diff_ci_high,
    UNNEST($wins) AS wins,
    UNNEST($losses) AS losses,
    UNNEST($ties) AS ties,
    UNNEST($regressed) AS regressed,
    UNNEST($improved) AS improved,
    UNNEST($p_value) AS p_value,
    UNNEST($test) AS test,
    UNNEST($agreement_rate) AS agreement_rate;
