-- The write-ahead ledger (tasks/gateway/journal.py): one row per journal line, ingested from the
-- gateways' append-only files. `intent` before a request is sent (its worst-case cost), `answer`
-- when a paid answer came back (its real cost), `failed` when none did. An intent with neither is
-- counted at its worst case: the recorded spend is at least what the providers billed.
-- And every change of a study's spend cap (raises are explicit: --raise-cap).

CREATE TABLE ledger (
    journal            TEXT NOT NULL,      -- <pid>-<uuid>.jsonl of the gateway that wrote it
    seq                INTEGER NOT NULL,   -- line number in that journal
    kind               TEXT NOT NULL,      -- intent | answer | failed
    intent_seq         INTEGER,            -- answer/failed: the intent it resolves
    study_id           TEXT,
    trial_id           INTEGER,
    purpose            TEXT,               -- eval | optimize
    model              TEXT,
    cache_key          TEXT,
    worst_usd          DOUBLE,             -- intent: the most the request may cost
    cost_usd           DOUBLE,             -- answer: what it cost
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    created_at         TIMESTAMP NOT NULL,
    PRIMARY KEY (journal, seq)
);

CREATE TABLE cap_changes (
    study_id     TEXT NOT NULL,
    from_usd     DOUBLE,                   -- NULL: the study had no cap
    to_usd       DOUBLE,                   -- NULL: the cap was lifted
    spent_usd    DOUBLE NOT NULL,          -- recorded spend when it changed
    changed_at   TIMESTAMP NOT NULL
);
