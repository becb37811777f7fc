-- A resumed samples stage starts clean: drop what an interrupted run left.
DELETE FROM sample_answers WHERE study_id = $study_id;
