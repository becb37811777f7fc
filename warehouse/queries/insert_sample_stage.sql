-- The samples stage of a study: its size and why (replaces an earlier run's row).
INSERT OR REPLACE INTO sample_stages
    (study_id, status, reason, n_logged, n_served, n_chosen, max_samples, configs, worst_usd, left_usd,
     reserve_fraction, first_at, last_at, created_at)
VALUES ($study_id, $status, $reason, $n_logged, $n_served, $n_chosen, $max_samples, $configs, $worst_usd, $left_usd,
        $reserve_fraction, $first_at, $last_at, now());
