-- The evidence of a study: paired comparisons of front configs with the incumbent on the held-out
-- split (overall and per slice), the examples that flipped, and the releases pinned from studies.

CREATE TABLE comparisons (
    study_id            TEXT NOT NULL,
    trial_id            INTEGER NOT NULL,   -- the dev trial of the config compared
    test_trial_id       INTEGER NOT NULL,   -- its evaluation on the held-out split
    slice_field         TEXT,               -- NULL: overall
    slice_value         TEXT,
    n                   INTEGER NOT NULL,
    incumbent_quality   DOUBLE NOT NULL,
    candidate_quality   DOUBLE NOT NULL,
    diff                DOUBLE NOT NULL,    -- candidate - incumbent, paired
    diff_ci_low         DOUBLE NOT NULL,    -- 95% paired bootstrap
    diff_ci_high        DOUBLE NOT NULL,
    wins                INTEGER NOT NULL,
    losses              INTEGER NOT NULL,
    ties                INTEGER NOT NULL,
    regressed           INTEGER NOT NULL,   -- right -> wrong
    improved            INTEGER NOT NULL,   -- wrong -> right
    p_value             DOUBLE NOT NULL,
    test                TEXT NOT NULL,      -- mcnemar_exact | paired_permutation
    agreement_rate      DOUBLE              -- overall rows only: same answer as the incumbent
);

CREATE TABLE flips (
    study_id               TEXT NOT NULL,
    trial_id               INTEGER NOT NULL,
    example_id             TEXT NOT NULL,
    direction              TEXT NOT NULL,   -- regressed (right -> wrong) | improved (wrong -> right)
    input_text             TEXT,
    slices                 JSON,
    incumbent_prediction   JSON,
    candidate_prediction   JSON,
    incumbent_score        DOUBLE,
    candidate_score        DOUBLE
);

CREATE TABLE releases (
    feature        TEXT NOT NULL,
    version        INTEGER NOT NULL,
    action         TEXT NOT NULL,          -- promote | rollback
    study_id       TEXT NOT NULL,
    trial_id       INTEGER NOT NULL,
    model          TEXT NOT NULL,
    strategy       TEXT NOT NULL,
    program_hash   TEXT,
    path           TEXT NOT NULL,          -- the release file written
    forced         BOOLEAN NOT NULL,       -- promoted although not selected / not on the front
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (feature, version)
);

ALTER TABLE studies ADD COLUMN policy JSON;  -- the selection policy the study applied
