-- Optuna search: which Optuna trial a warehouse trial is, whether it met the hard limits, how far
-- racing let it go; where the study's Optuna storage lives.

ALTER TABLE trials ADD COLUMN optuna_number INTEGER;
ALTER TABLE trials ADD COLUMN feasible BOOLEAN;       -- met the study's hard limits (error rate, p95)
ALTER TABLE trials ADD COLUMN stage DOUBLE;           -- fraction of the split evaluated (racing)
ALTER TABLE studies ADD COLUMN optuna_storage TEXT;   -- sqlite:///... or postgresql://... (no password)
ALTER TABLE studies ADD COLUMN stopped_by TEXT;       -- max_trials | max_wall_s | budget | space_exhausted
