-- Each model of a study as the preflight found it: where it is served (never its key), which
-- source priced it, and whether its preflight call left it out of the search (with the fix).

CREATE TABLE study_models (
    study_id      TEXT NOT NULL,
    model         TEXT NOT NULL,      -- the name configs, trials and calls use
    litellm_id    TEXT NOT NULL,
    api_base      TEXT,               -- declared endpoint; NULL: litellm's default for the id
    role          TEXT NOT NULL,      -- incumbent | candidate | optimizer
    price_source  TEXT NOT NULL,      -- declared (space, --prices file, the model entry) | bundled self-hosted | litellm's price map
    preflight     TEXT NOT NULL,      -- ok | left_out | failed (kept: transient) | skipped
    parsed        BOOLEAN,            -- whether the preflight answer parsed (NULL: no answer)
    note          TEXT,               -- the one-line fix, or the error
    PRIMARY KEY (study_id, model)
);
