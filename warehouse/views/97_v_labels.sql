-- A classifier's evidence on the held-out split (tasks/evidence/labels.py), stored with the study's selection
-- (studies.selection -> labels): per label, the incumbent's and each confirmed config's precision and recall; the
-- confusion between the incumbent's answers and each candidate's; the configs whose answers collapsed onto a few labels.
-- trial_id is the dev trial (the incumbent's dev trial for the incumbent). Studies whose target is not a label have no rows.
CREATE OR REPLACE VIEW v_label_metrics AS
WITH x AS (
    SELECT s.id AS study_id, s.feature,
           unnest(from_json(json_extract(s.selection, '$.labels.per_label'),
                  '[{"trial_id": "INTEGER", "role": "VARCHAR", "label": "VARCHAR", "n_gold": "INTEGER", "n_answered": "INTEGER", "right": "INTEGER", "precision": "DOUBLE", "recall": "DOUBLE"}]')) AS r
    FROM studies s WHERE json_extract(s.selection, '$.labels') IS NOT NULL
)
SELECT study_id, feature, r.trial_id, r.role, r.label, r.n_gold, r.n_answered, r.right, r.precision, r.recall
FROM x;

CREATE OR REPLACE VIEW v_label_confusion AS
WITH x AS (
    SELECT s.id AS study_id, s.feature,
           unnest(from_json(json_extract(s.selection, '$.labels.confusion'),
                  '[{"trial_id": "INTEGER", "incumbent_answer": "VARCHAR", "candidate_answer": "VARCHAR", "n": "INTEGER"}]')) AS r
    FROM studies s WHERE json_extract(s.selection, '$.labels') IS NOT NULL
)
SELECT study_id, feature, r.trial_id, r.incumbent_answer, r.candidate_answer, r.n FROM x;

CREATE OR REPLACE VIEW v_label_collapse AS
WITH x AS (
    SELECT s.id AS study_id, s.feature,
           unnest(from_json(json_extract(s.selection, '$.labels.collapse'),
                  '[{"trial_id": "INTEGER", "config": "VARCHAR", "role": "VARCHAR", "why": "VARCHAR"}]')) AS r
    FROM studies s WHERE json_extract(s.selection, '$.labels') IS NOT NULL
)
SELECT study_id, feature, r.trial_id, r.role, r.config, r.why FROM x;
