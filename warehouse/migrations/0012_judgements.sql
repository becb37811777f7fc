-- Judge metrics (tasks/feature/judge.py): what a judge model said of each judged answer. One row
-- per judge answer: pairwise features ask in both orders (`ab`: A = the judged trial's answer,
-- B = the reference, the incumbent's answer; `ba`: swapped); rubric features once per criterion
-- (`single`; criterion NULL: one overall verdict). A row without a call (cache_key NULL) is a
-- verdict given without asking: identical answers (a tie), no reference answer (a win).
-- The judge's calls themselves are in `calls` (purpose = 'judge', trial_id = the judged trial).

CREATE TABLE judgements (
    study_id     TEXT,
    trial_id     INTEGER,           -- the judged trial
    example_id   TEXT NOT NULL,
    mode         TEXT NOT NULL,     -- rubric | pairwise
    "order"      TEXT NOT NULL,     -- ab | ba | single
    criterion    TEXT,              -- rubric: the criterion judged; NULL: the overall verdict
    verdict      TEXT,              -- as parsed: pass | fail | 1..5 | A | B | tie (| win: no reference); NULL: unparseable or failed
    raw_answer   TEXT,              -- what the judge answered (NULL: no call, or the call failed)
    error        TEXT,              -- the judge call's error (refused by the spend cap, provider down, ...)
    cache_key    TEXT,              -- the judge call (calls.cache_key); NULL: no call was needed
    score        DOUBLE,            -- this answer's score for the judged trial, in [0, 1]; NULL: unparseable or failed
    example_score DOUBLE NOT NULL,  -- the judged example's score (every row of the example carries it)
    outcome      TEXT,              -- pairwise: win | tie | loss for the judged trial (NULL: unjudged); rubric: NULL
    judge_model  TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL
);
