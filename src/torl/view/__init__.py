"""`torl view`: a self-contained HTML report of trajectories and training curves."""

from torl.view.report import (
    ReportError,
    build_report,
    find_metrics,
    load_metrics,
    load_trajectories,
    metric_series,
    trajectory_series,
    write_report,
)

__all__ = [
    "ReportError",
    "build_report",
    "find_metrics",
    "load_metrics",
    "load_trajectories",
    "metric_series",
    "trajectory_series",
    "write_report",
]
