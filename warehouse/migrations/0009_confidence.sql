-- The confidence of an answer where the model gives one: the log-probability of the label offramp's
-- own tuned classifiers (tuned/<hash>) answer with. A confidence cascade (composites) escalates below
-- a threshold chosen on dev.
ALTER TABLE calls ADD COLUMN confidence DOUBLE;
