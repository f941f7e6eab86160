"""Honest evaluation: metrics, pictures, metrics.json, Grad-CAM and the run's report."""

from kerasdl.evaluation.evaluate import write_evaluation
from kerasdl.evaluation.explain import explain_images, write_cam_grids
from kerasdl.evaluation.gradcam import Explanation, GradCam
from kerasdl.evaluation.metrics import compute_metrics
from kerasdl.evaluation.report import compare_runs, format_comparison, write_report

__all__ = [
    "Explanation",
    "GradCam",
    "compare_runs",
    "compute_metrics",
    "explain_images",
    "format_comparison",
    "write_cam_grids",
    "write_evaluation",
    "write_report",
]
