-- PLACEHOLDER on branch h-discover only, so 0014 applies here (the runner refuses gaps).
-- The integrator drops this file when merging h-samples' own 0013.
SELECT 1;
