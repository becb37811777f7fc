-- Latency is measured, so it is noisy: a trial keeps the 95% bootstrap interval of its p95 (the
-- front treats p95 differences within the combined noise as ties: v_pareto_front), and the
-- machine's 1-minute load average while it ran (self-hosted latency scales with the machine's
-- other work; the report says how loaded the machine was when the front's latencies were measured).
ALTER TABLE trials ADD COLUMN latency_p95_ci_low DOUBLE;
ALTER TABLE trials ADD COLUMN latency_p95_ci_high DOUBLE;
ALTER TABLE trials ADD COLUMN load_avg_min DOUBLE;
ALTER TABLE trials ADD COLUMN load_avg_max DOUBLE;
