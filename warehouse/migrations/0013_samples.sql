-- Production samples (tasks/study/samples.py): after the held-out comparison, the incumbent and the
-- confirmed configs answer a seeded sample of logged production inputs (trials with split
-- 'samples', their calls purpose 'eval'), compared with what the incumbent served. One row per
-- study for the stage (its size, chosen from the budget, and why), one per trial and sample.

CREATE TABLE sample_stages (
    study_id          TEXT PRIMARY KEY,
    status            TEXT NOT NULL,      -- ran | skipped
    reason            TEXT NOT NULL,      -- why this n (or why skipped), in words
    n_logged          INTEGER NOT NULL,   -- logged inputs read from data.samples
    n_served          INTEGER NOT NULL,   -- of them, with a served answer the shipped parser reads
    n_chosen          INTEGER NOT NULL,   -- the sample answered by every config
    max_samples       INTEGER NOT NULL,
    configs           INTEGER NOT NULL,   -- configs that answered it (incumbent included)
    worst_usd         DOUBLE,             -- worst case of the chosen sample, all configs
    left_usd          DOUBLE,             -- what was left of the spend cap before it (NULL: no cap)
    reserve_fraction  DOUBLE NOT NULL,    -- of what was left, kept back
    first_at          TIMESTAMPTZ,        -- the logged inputs' time range (all of them)
    last_at           TIMESTAMPTZ,
    created_at        TIMESTAMP NOT NULL
);

CREATE TABLE sample_answers (
    study_id          TEXT NOT NULL,
    trial_id          INTEGER NOT NULL,   -- the samples trial (split 'samples')
    source_trial_id   INTEGER NOT NULL,   -- the dev trial of the config
    sample_id         TEXT NOT NULL,
    logged_at         TIMESTAMPTZ,        -- when it was served (NULL: the log has no time)
    input_text        TEXT NOT NULL,
    served            JSON NOT NULL,      -- what the incumbent served, parsed by the shipped prompt's parser
    prediction        JSON,               -- this config's answer, parsed; NULL when unparseable or failed
    agreement         DOUBLE NOT NULL,    -- in [0, 1]: same label / number within tolerance / json_f1
    PRIMARY KEY (study_id, trial_id, sample_id)
);
