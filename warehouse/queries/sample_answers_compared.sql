-- A study's production-sample answers of every config but the incumbent's re-run, with what was
-- served (the discovered slices of the samples: tasks/evidence/discovered.py `discover_samples`).
SELECT a.trial_id, a.source_trial_id, a.sample_id, a.input_text, a.served, a.prediction, a.agreement
FROM sample_answers a
JOIN trials t ON t.study_id = a.study_id AND t.trial_id = a.trial_id
WHERE a.study_id = $study_id AND t.role <> 'incumbent' AND a.source_trial_id IS NOT NULL
  AND t.status = 'completed'  -- a trial cut short (a stop, a provider down) says nothing of the traffic
ORDER BY a.trial_id, a.sample_id;
