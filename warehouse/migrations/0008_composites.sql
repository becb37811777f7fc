-- Composite candidates (tasks/study/composites.py): cascades and routers built from configs the
-- search measured on dev. A composite is a trial (role 'composite', its label in `model`, its kind
-- in `strategy`); what defines it is here, and how each request went (which branch answered) is in
-- composite_answers, for its dev trial (from its members' recorded answers, no call) and its test
-- trial (its members' calls on test, purpose = 'composite').

CREATE TABLE composites (
    study_id     TEXT NOT NULL,
    trial_id     INTEGER NOT NULL,   -- the composite's dev trial
    kind         TEXT NOT NULL,      -- cascade | router
    rule         TEXT NOT NULL,      -- unsure | disagree | confidence | slice | learned
    label        TEXT NOT NULL,      -- e.g. cascade (unsure): A → B
    description  TEXT NOT NULL,      -- the rule in words
    members      JSON NOT NULL,      -- the members' dev trial ids (cascade: cheap..., fallback last)
    threshold    DOUBLE,             -- chosen on dev (confidence cascade, learned router)
    definition   JSON NOT NULL,      -- everything needed to answer through it (routes, the router's training data)
    created_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (study_id, trial_id)
);

CREATE TABLE composite_answers (
    study_id         TEXT NOT NULL,
    trial_id         INTEGER NOT NULL,   -- the composite's dev or test trial
    example_id       TEXT NOT NULL,
    branch           TEXT NOT NULL,      -- `cheap: <config>`, `escalated: <config>`, `route: <config>`
    member_trial_id  INTEGER NOT NULL,   -- the member (dev trial) whose answer is final
    score            DOUBLE,
    prediction       JSON,               -- the final answer, parsed; NULL when unparseable or failed
    cost_usd         DOUBLE NOT NULL,    -- all the calls this request made (at their original cost)
    latency_s        DOUBLE NOT NULL,    -- their latencies added up (the calls are sequential)
    calls            INTEGER NOT NULL,   -- how many member calls the request made
    PRIMARY KEY (study_id, trial_id, example_id)
);
