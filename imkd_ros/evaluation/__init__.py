"""Evaluation with the official nuScenes detection metrics (nuscenes-devkit).

``evaluate(predictions, ground_truth, meta)`` scores in-memory ego-frame ``Boxes`` (training, the
ablation, the replay); ``official.py`` writes the nuScenes submission JSON and runs the devkit's
``DetectionEval``; ``report.py`` writes report.json / report.md; ``imkd eval`` drives both.
"""

from imkd_ros.evaluation.metrics import CONDITIONS, DISTANCE_BANDS, evaluate
from imkd_ros.evaluation.report import markdown, summary_line, write_reports

__all__ = ["CONDITIONS", "DISTANCE_BANDS", "evaluate", "markdown", "summary_line", "write_reports"]
