-- A judged study's judge against the feature's human judgements (tasks/study/calibrate.py): one row
-- per study, measured before the held-out comparison and used to correct its intervals for the
-- judge's errors (tasks/evidence/calibration.py). `human` / `judge`: the verdicts as category indices
-- of `scale` (JSON arrays, item by item), enough to rebuild the calibration on a resume. A study whose
-- feature has no human judgements has a row with n = 0: its intervals assume a perfect judge.
CREATE TABLE judge_calibrations (
    study_id        TEXT PRIMARY KEY,
    mode            TEXT NOT NULL,      -- rubric | pairwise
    judge_model     TEXT NOT NULL,
    path            TEXT,               -- the human judgements file, relative to feature.yaml (NULL: none)
    scale           TEXT,               -- pass_fail | five_point | pairwise
    n               INTEGER NOT NULL,   -- human-judged items
    raw_agreement   DOUBLE,
    kappa           DOUBLE,             -- Cohen's kappa (NULL: undefined)
    weighted_kappa  DOUBLE,             -- five_point: quadratic-weighted
    confusion       TEXT,               -- JSON: rows = the people's verdict, columns = the judge's
    judge_tie_rate  DOUBLE,
    human_tie_rate  DOUBLE,
    human           TEXT,
    judge           TEXT,
    unjudged        INTEGER NOT NULL,   -- judge answers on the items that did not parse or failed
    summary         TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL
);
