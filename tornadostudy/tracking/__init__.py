"""MLflow tracking of studies and trials: the tracker (the only module that imports mlflow), the on-disk spool
that keeps a run's writes through a kill or an outage, the delivery thread, and run keys that make each trial's
run exactly once."""

from tornadostudy.tracking.run_refs import RUN_KEY_TAG, close_abandoned_runs, new_run_key, trial_run_key
from tornadostudy.tracking.tracker import DEFAULT_TRACKING_URI, Tracker, merge_writes, resolve_tracking_uri

__all__ = [
    "DEFAULT_TRACKING_URI",
    "RUN_KEY_TAG",
    "Tracker",
    "close_abandoned_runs",
    "merge_writes",
    "new_run_key",
    "resolve_tracking_uri",
    "trial_run_key",
]
