-- Compiled prompt programs (DSPy JSON) and the link from a trial to its program.

CREATE TABLE programs (
    compile_key        TEXT PRIMARY KEY,   -- feature + signature + config + train examples + seed
    program_hash       TEXT NOT NULL,      -- sha256 of the program JSON (instructions + demos)
    feature            TEXT NOT NULL,
    model              TEXT NOT NULL,
    strategy           TEXT NOT NULL,      -- zero_shot | few_shot | mipro | gepa
    strategy_params    JSON NOT NULL,      -- k, optimizer_model, budget
    settings           JSON NOT NULL,      -- decoding settings it was compiled with
    train_size         INTEGER NOT NULL,
    seed               INTEGER NOT NULL,
    program            JSON NOT NULL,      -- DSPy state: load with dspy.Predict(signature).load_state(...)
    study_id           TEXT,               -- the study that compiled it
    trial_id           INTEGER,
    compile_calls      INTEGER NOT NULL,   -- optimizer calls (purpose = optimize)
    compile_tokens     BIGINT NOT NULL,
    compile_cost_usd   DOUBLE NOT NULL,
    compile_seconds    DOUBLE NOT NULL,
    created_at         TIMESTAMP NOT NULL
);

ALTER TABLE trials ADD COLUMN strategy TEXT;
ALTER TABLE trials ADD COLUMN compile_key TEXT;
ALTER TABLE trials ADD COLUMN program_hash TEXT;
ALTER TABLE trials ADD COLUMN reused_program BOOLEAN;
ALTER TABLE studies ADD COLUMN max_spend_usd DOUBLE;
