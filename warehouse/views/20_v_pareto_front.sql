-- Per study: the candidate configs (dev split, completed, within the hard limits) that no other candidate beats on all of
-- quality (max), cost per 1k requests (min) and p95 latency (min). The incumbent is the reference
-- the study migrates away from, not a candidate, so it is not on the front. Ties are all kept.
-- `feasible` is false for a trial beyond a hard limit, including one no better than the feature's trivial answer
-- (the top of its dev quality interval <= the trivial answer's dev quality: tasks/feature/trivial.py, Limits.trivial_quality).
-- p95 latency is measured: two p95s within their combined noise (the half-widths of their 95% bootstrap
-- intervals, added in quadrature) are a tie, never a reason to stay on the front (tasks/search/pareto.py).
CREATE OR REPLACE VIEW v_pareto_front AS
WITH c AS (
    SELECT *, coalesce((latency_p95_ci_high - latency_p95_ci_low) / 2, 0) AS latency_noise FROM v_trials
    WHERE split = 'dev' AND status = 'completed' AND coalesce(feasible, true) AND role IN ('candidate', 'naive_swap')
)
SELECT c.* EXCLUDE (latency_noise)
FROM c
WHERE NOT EXISTS (
    SELECT 1 FROM c AS o
    WHERE o.study_id = c.study_id
      AND o.quality >= c.quality
      AND o.cost_per_1k_usd <= c.cost_per_1k_usd
      AND o.latency_p95_s <= c.latency_p95_s + sqrt(o.latency_noise * o.latency_noise + c.latency_noise * c.latency_noise)
      AND (o.quality > c.quality
           OR o.cost_per_1k_usd < c.cost_per_1k_usd
           OR o.latency_p95_s < c.latency_p95_s - sqrt(o.latency_noise * o.latency_noise + c.latency_noise * c.latency_noise))
);
