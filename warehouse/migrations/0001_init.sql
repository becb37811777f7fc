-- offramp warehouse, version 1: features, studies, trials, calls, llm_cache.
-- Append-only: never edit a released migration; add 0002_*.sql instead.

CREATE TABLE features (
    name         TEXT PRIMARY KEY,
    description  TEXT,
    spec_path    TEXT NOT NULL,      -- feature.yaml it was loaded from
    spec_hash    TEXT NOT NULL,      -- sha256 of the validated spec (JSON, sorted keys)
    spec         JSON NOT NULL,      -- the validated spec
    updated_at   TIMESTAMP NOT NULL
);

CREATE TABLE studies (
    id                 TEXT PRIMARY KEY,
    feature            TEXT NOT NULL,
    deprecated_model   TEXT,          -- the retiring model that triggered the study
    incumbent_model    TEXT NOT NULL,
    trigger            TEXT NOT NULL, -- cli | demo | event | ui
    space_name         TEXT NOT NULL,
    space              JSON NOT NULL, -- the validated search space
    params             JSON NOT NULL, -- the flow's parameters
    seed               INTEGER NOT NULL,
    started_at         TIMESTAMP NOT NULL,
    finished_at        TIMESTAMP,
    status             TEXT NOT NULL, -- running | completed | failed
    error              TEXT,
    selected_trial_id  INTEGER,       -- the dev trial chosen (NULL: none passed)
    selection          JSON           -- rule, reason, per-candidate verdicts
);

CREATE TABLE trials (
    study_id            TEXT NOT NULL,
    trial_id            INTEGER NOT NULL,  -- 0, 1, 2 ... within the study
    role                TEXT NOT NULL,     -- incumbent | naive_swap | candidate
    split               TEXT NOT NULL,     -- dev (search) | test (held-out confirmation)
    source_trial_id     INTEGER,           -- a test trial re-evaluates this dev trial
    config_hash         TEXT NOT NULL,
    model               TEXT NOT NULL,
    settings            JSON NOT NULL,
    status              TEXT NOT NULL,     -- running | completed | failed
    n_examples          INTEGER,
    quality             DOUBLE,            -- the feature's metric on the split
    quality_ci_low      DOUBLE,            -- 95% bootstrap interval
    quality_ci_high     DOUBLE,
    cost_per_1k_usd     DOUBLE,            -- what 1,000 requests cost at list price (cache hits count at their original cost)
    latency_p50_s       DOUBLE,
    latency_p95_s       DOUBLE,
    error_rate          DOUBLE,            -- calls that failed after retries
    parse_failure_rate  DOUBLE,            -- answers that could not be parsed (scored 0)
    prompt_tokens       BIGINT,
    completion_tokens   BIGINT,
    spend_usd           DOUBLE,            -- what this trial actually paid (cache hits are free)
    started_at          TIMESTAMP NOT NULL,
    finished_at         TIMESTAMP,
    error               TEXT,
    PRIMARY KEY (study_id, trial_id)
);

CREATE TABLE calls (
    study_id           TEXT,
    trial_id           INTEGER,
    example_id         TEXT,
    model              TEXT NOT NULL,
    settings           JSON NOT NULL,
    prompt_hash        TEXT NOT NULL,      -- sha256 of the messages
    cache_key          TEXT NOT NULL,      -- sha256 of (model, messages, settings)
    output_text        TEXT,
    prediction         JSON,               -- parsed answer; NULL when unparseable
    score              DOUBLE,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    cost_usd           DOUBLE NOT NULL,    -- paid by this call: 0 on a cache hit
    latency_s          DOUBLE NOT NULL,    -- wall time of this call
    orig_cost_usd      DOUBLE,             -- cost of the model call that produced the answer
    orig_latency_s     DOUBLE,             -- latency of the model call that produced the answer
    error              TEXT,
    cache_hit          BOOLEAN NOT NULL,
    attempts           INTEGER NOT NULL,
    purpose            TEXT NOT NULL,      -- eval | optimize | judge
    created_at         TIMESTAMP NOT NULL
);

CREATE TABLE llm_cache (
    cache_key          TEXT PRIMARY KEY,
    model              TEXT NOT NULL,
    request            JSON NOT NULL,      -- model, messages, settings (never credentials)
    output_text        TEXT NOT NULL,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    cost_usd           DOUBLE NOT NULL,
    latency_s          DOUBLE NOT NULL,
    created_at         TIMESTAMP NOT NULL
);
