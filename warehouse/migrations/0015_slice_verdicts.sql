-- Slices judged by evidence (tasks/evidence/verdicts.py): each slice row of `comparisons` carries its
-- verdict against the policy's max_slice_drop, judged on its interval widened for the number of slices
-- judged (Bonferroni: confidence 1 - 0.05/m), and, when too few to tell, the examples that would decide it.
-- NULL on overall rows, on studies before 0015, and when the policy sets no slice limit.
ALTER TABLE comparisons ADD COLUMN verdict TEXT;           -- not_worse | worse | too_few | not_judged
ALTER TABLE comparisons ADD COLUMN adj_confidence DOUBLE;  -- 1 - 0.05 / slices_judged
ALTER TABLE comparisons ADD COLUMN adj_ci_low DOUBLE;
ALTER TABLE comparisons ADD COLUMN adj_ci_high DOUBLE;
ALTER TABLE comparisons ADD COLUMN slices_judged INTEGER;  -- m
ALTER TABLE comparisons ADD COLUMN n_needed INTEGER;       -- too_few: examples (total) that decide it in 80% of draws; NULL: never

-- Power before spend: what the test split can tell, per declared slice and overall (slice_field NULL),
-- written when a study starts (an assumed discordance) and again once the incumbent's dev quality is known.
CREATE TABLE slice_power (
    study_id         TEXT NOT NULL,
    slice_field      TEXT,               -- NULL: the whole test split
    slice_value      TEXT,
    n                INTEGER NOT NULL,   -- examples in the test split
    judged           BOOLEAN NOT NULL,   -- n >= min_slice_n and the policy sets a slice limit
    slices_judged    INTEGER NOT NULL,   -- m
    confidence       DOUBLE NOT NULL,    -- 0.95 overall; 1 - 0.05/m for slices
    discordance      DOUBLE NOT NULL,    -- assumed share of examples on which candidate and incumbent differ
    assumption       TEXT NOT NULL,      -- where that share comes from
    detectable_drop  DOUBLE NOT NULL,    -- smallest drop told apart at that confidence with 80% power
    target_drop      DOUBLE,             -- max_slice_drop (slices), quality_tolerance (overall)
    n_needed         INTEGER,            -- examples at which detectable_drop reaches target_drop
    more_needed      INTEGER,            -- n_needed - n (0: enough)
    computed_at      TIMESTAMP NOT NULL DEFAULT now()
);
