-- Model retirements: what every source says (with history), and the events the watch emitted.

CREATE TABLE deprecations (
    model        TEXT NOT NULL,          -- as the source names it (litellm id, or the user's)
    source       TEXT NOT NULL,          -- litellm | notice (offramp notify) | notices_file | provider_api
    retires_on   DATE NOT NULL,
    replacement  TEXT,                   -- the successor the source suggests
    source_ref   TEXT,                   -- URL, file, or litellm map key
    first_seen   TIMESTAMP NOT NULL,
    last_seen    TIMESTAMP NOT NULL,     -- the last watch (or notify) that saw it
    PRIMARY KEY (model, source)
);

CREATE TABLE deprecation_history (
    model        TEXT NOT NULL,
    source       TEXT NOT NULL,
    change       TEXT NOT NULL,          -- new | date_changed | replacement_changed | withdrawn
    retires_on   DATE NOT NULL,
    previous_retires_on DATE,
    replacement  TEXT,
    source_ref   TEXT,
    seen_at      TIMESTAMP NOT NULL
);

CREATE TABLE deprecation_events (
    event_id     TEXT PRIMARY KEY,       -- the Prefect event's id
    feature      TEXT NOT NULL,
    model        TEXT NOT NULL,
    retires_on   DATE NOT NULL,
    replacement  TEXT,
    source       TEXT NOT NULL,
    days_left    INTEGER NOT NULL,
    horizon_days INTEGER NOT NULL,
    api_url      TEXT,                   -- the Prefect API it went to (no credentials)
    emitted_at   TIMESTAMP NOT NULL
);
