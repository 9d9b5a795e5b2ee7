"""MLflow logging of studies and trials — the only module that imports mlflow.

Every call goes through an explicit ``MlflowClient`` with an experiment id: no fluent global state and
never ``set_experiment`` in workers (it races and silently files runs under "Default").
One study = one experiment (named after the study) with one parent run; one trial = one child run.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from tornadostudy.errors import TrackingError, UserInputError
from tornadostudy.urls import mask_url, normalize_db_url

__all__ = ["DEFAULT_TRACKING_URI", "Tracker", "resolve_tracking_uri"]

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
PARENT_TAG = "mlflow.parentRunId"


def resolve_tracking_uri(cli: str | None = None, stored: str | None = None) -> str:
    """``--tracking-uri`` > ``MLFLOW_TRACKING_URI`` > the URI stored at create > ``sqlite:///mlflow.db``."""
    uri = cli or os.environ.get("MLFLOW_TRACKING_URI") or stored or DEFAULT_TRACKING_URI
    if "://" not in uri and not uri.startswith("file:"):
        raise UserInputError(
            f"tracking URI {uri!r} has no scheme: use e.g. sqlite:///mlflow.db, postgresql://host/db or http://host:5000"
        )
    return normalize_db_url(uri)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Tracker:
    """A thin wrapper over ``MlflowClient`` that speaks in studies and trials."""

    def __init__(self, uri: str) -> None:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        if uri.startswith("postgresql"):
            # Many workers logging straight to the database must not each keep a pool of idle connections.
            os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
        try:
            from mlflow import MlflowClient

            self.client = MlflowClient(tracking_uri=uri)
        except Exception as exc:
            raise TrackingError(f"cannot open MLflow tracking at {mask_url(uri)}: {exc}") from exc
        self.uri = uri

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise TrackingError(f"MLflow ({mask_url(self.uri)}) failed to {what}: {exc}") from exc

    # --- studies ---------------------------------------------------------------------------------
    def ensure_experiment(self, name: str) -> tuple[str, bool]:
        """The experiment id for ``name`` and whether this call created it."""
        experiment = self._call("look up the experiment", self.client.get_experiment_by_name, name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                # A deleted experiment keeps its name reserved; creating the study again restores it.
                log.warning("restoring deleted MLflow experiment %r", name)
                self._call("restore the experiment", self.client.restore_experiment, experiment.experiment_id)
            return experiment.experiment_id, False
        try:
            return self.client.create_experiment(name, tags={"tornadostudy.study": name}), True
        except Exception:
            # Someone created it between our look-up and create: use theirs.
            experiment = self._call("look up the experiment", self.client.get_experiment_by_name, name)
            if experiment is None:
                raise
            return experiment.experiment_id, False

    def create_parent_run(self, experiment_id: str, study_name: str, tags: dict[str, str]) -> str:
        """The study's run, which groups the trial runs. It is closed at once: it only groups (and later
        holds report artifacts), and a run left RUNNING would look like a live process that died."""
        run = self._call(
            "create the study run",
            self.client.create_run,
            experiment_id,
            run_name=f"study {study_name}",
            tags={"tornadostudy.role": "study", **tags},
        )
        self.end_run(run.info.run_id, "FINISHED")
        return run.info.run_id

    def delete_experiment(self, experiment_id: str) -> None:
        self._call("delete the experiment", self.client.delete_experiment, experiment_id)

    def delete_run(self, run_id: str) -> None:
        self._call("delete the run", self.client.delete_run, run_id)

    # --- trials ----------------------------------------------------------------------------------
    def start_trial_run(
        self, experiment_id: str, parent_run_id: str | None, run_name: str, params: dict[str, Any], tags: dict[str, Any]
    ) -> str:
        from mlflow.entities import Param

        all_tags = {"tornadostudy.role": "trial", **{k: str(v) for k, v in tags.items()}}
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        run = self._call("create a trial run", self.client.create_run, experiment_id, run_name=run_name, tags=all_tags)
        run_id = run.info.run_id
        self._call(
            "log trial params",
            self.client.log_batch,
            run_id,
            params=[Param(k, str(v)) for k, v in sorted(params.items())],
        )
        return run_id

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        """All metrics of one step (an epoch, or the final numbers at step 0) in one call."""
        from mlflow.entities import Metric

        ts = _now_ms()
        batch = [Metric(k, float(v), ts, step) for k, v in sorted(metrics.items())]
        self._call("log metrics", self.client.log_batch, run_id, metrics=batch)

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self._call("set tags", self.client.log_batch, run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Close a run as FINISHED, FAILED or KILLED."""
        self._call("end the run", self.client.set_terminated, run_id, status=status, end_time=_now_ms())

    # --- reading ---------------------------------------------------------------------------------
    def trial_runs(self, experiment_id: str) -> list[Any]:
        runs, token = [], None
        while True:
            page = self._call(
                "list runs",
                self.client.search_runs,
                [experiment_id],
                filter_string="tags.`tornadostudy.role` = 'trial'",
                max_results=1000,
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def metric_history(self, run_id: str, key: str) -> list[Any]:
        return self._call("read a metric history", self.client.get_metric_history, run_id, key)
