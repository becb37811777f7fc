-- Discovered slices (tasks/evidence/discover.py): after the paired comparison, the groups of inputs
-- (clustered by their text) where a compared config loses to, or disagrees with, the incumbent more
-- than elsewhere. One row per discovery run (what was tested, under which rule) and one per slice found.

CREATE TABLE slice_discovery (
    study_id               TEXT NOT NULL,
    trial_id               INTEGER NOT NULL,   -- the dev trial of the config compared
    test_trial_id          INTEGER,            -- its evaluation the inputs come from (NULL: production samples)
    source                 TEXT NOT NULL,      -- test | samples
    n_inputs               INTEGER NOT NULL,
    n_clustered            INTEGER NOT NULL,   -- < n_inputs: a seeded sample was clustered
    n_tested               INTEGER NOT NULL,   -- tree groups x signals tested (the Bonferroni m)
    threshold              DOUBLE NOT NULL,    -- alpha / m
    overall_loss_rate      DOUBLE,
    overall_disagree_rate  DOUBLE NOT NULL,
    n_found                INTEGER NOT NULL,
    rule                   TEXT NOT NULL
);

CREATE TABLE discovered_slices (
    study_id               TEXT NOT NULL,
    trial_id               INTEGER NOT NULL,
    source                 TEXT NOT NULL,
    slice_id               TEXT NOT NULL,      -- unique in its study: `offramp slices save STUDY SLICE_ID --name NAME`
    signal                 TEXT NOT NULL,      -- loss | disagree: the rate found higher in the group
    size                   INTEGER NOT NULL,
    share                  DOUBLE NOT NULL,    -- of the inputs compared
    losses                 INTEGER NOT NULL,
    loss_rate              DOUBLE,             -- NULL: no member's loss is known (samples without gold)
    loss_ci_low            DOUBLE,             -- 95% exact (Clopper-Pearson)
    loss_ci_high           DOUBLE,
    outside_loss_rate      DOUBLE,
    disagreements          INTEGER NOT NULL,
    disagree_rate          DOUBLE NOT NULL,
    disagree_ci_low        DOUBLE NOT NULL,
    disagree_ci_high       DOUBLE NOT NULL,
    outside_disagree_rate  DOUBLE,
    p_value                DOUBLE NOT NULL,    -- one-sided exact binomial vs the overall rate of `signal`
    terms                  JSON NOT NULL,      -- top word n-grams
    member_ids             JSON NOT NULL,      -- example ids of its members
    examples               JSON NOT NULL,      -- three members: input and both answers
    PRIMARY KEY (study_id, slice_id)
);
