-- A trial ends with its aggregates (NULLs and an error when it failed).
UPDATE trials SET
    status = $status,
    n_examples = $n_examples,
    quality = $quality,
    quality_ci_low = $quality_ci_low,
    quality_ci_high = $quality_ci_high,
    cost_per_1k_usd = $cost_per_1k_usd,
    latency_p50_s = $latency_p50_s,
    latency_p95_s = $latency_p95_s,
    error_rate = $error_rate,
    parse_failure_rate = $parse_failure_rate,
    prompt_tokens = $prompt_tokens,
    completion_tokens = $completion_tokens,
    spend_usd = $spend_usd,
    error = $error,
    program_hash = $program_hash,
    reused_program = $reused_program,
    feasible = $feasible,
    stage = $stage,
    finished_at = now()
WHERE study_id = $study_id AND trial_id = $trial_id;
