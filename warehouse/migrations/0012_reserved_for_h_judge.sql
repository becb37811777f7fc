-- PLACEHOLDER on branch h-discover only, so 0014 applies here (the runner refuses gaps).
-- The integrator drops this file when merging h-judge's own 0012.
SELECT 1;
