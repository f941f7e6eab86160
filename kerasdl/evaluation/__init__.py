"""Honest evaluation: metrics, pictures, metrics.json and the run's report."""

from kerasdl.evaluation.evaluate import write_evaluation
from kerasdl.evaluation.metrics import compute_metrics
from kerasdl.evaluation.report import compare_runs, format_comparison, write_report

__all__ = [
    "compare_runs",
    "compute_metrics",
    "format_comparison",
    "write_evaluation",
    "write_report",
]
