-- A resumed study recomputes its evidence: drop what an interrupted run left.
DELETE FROM comparisons WHERE study_id = $study_id;
