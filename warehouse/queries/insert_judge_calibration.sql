-- A study's judge calibration (tasks/study/calibrate.py).
INSERT OR REPLACE INTO judge_calibrations
    (study_id, mode, judge_model, path, scale, n, raw_agreement, kappa, weighted_kappa, confusion, judge_tie_rate,
     human_tie_rate, human, judge, unjudged, summary, created_at)
VALUES ($study_id, $mode, $judge_model, $path, $scale, $n, $raw_agreement, $kappa, $weighted_kappa, $confusion,
        $judge_tie_rate, $human_tie_rate, $human, $judge, $unjudged, $summary, now());
