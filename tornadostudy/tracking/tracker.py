"""MLflow logging of studies and trials — the only module that imports mlflow.

Every call goes through MLflow's own ``MlflowClient`` with an explicit experiment id: no fluent global
state and never ``set_experiment`` in workers (it races and silently files runs under "Default"). So
MLflow's URI schemes, authentication, plugins and environment variables all apply as the user set them.
One study = one experiment (named after the study) with one parent run; one trial = one child run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from tornadostudy.errors import TrackingError, UserInputError
from tornadostudy.tracking.run_refs import (
    RUN_KEY_TAG,
    RunBook,
    close_abandoned_runs,
    new_run_key,
    run_ref,
    trial_run_key,
)
from tornadostudy.tracking.spool import Spool
from tornadostudy.urls import mask_url, normalize_db_url

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

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
PARENT_TAG = "mlflow.parentRunId"
# MLflow error codes that refuse the write itself: sending it again cannot succeed. (A database error
# inside MLflow is TEMPORARILY_UNAVAILABLE or BAD_REQUEST, an unreachable server INTERNAL_ERROR.)
_REFUSALS = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def resolve_tracking_uri(cli: str | None = None, stored: str | None = None) -> str:
    """``--tracking-uri`` > ``MLFLOW_TRACKING_URI`` > the URI stored at create > ``sqlite:///mlflow.db``."""
    uri = cli or os.environ.get("MLFLOW_TRACKING_URI") or stored or DEFAULT_TRACKING_URI
    if "://" not in uri and not uri.startswith("file:"):
        raise UserInputError(
            f"tracking URI {uri!r} has no scheme: use e.g. sqlite:///mlflow.db, postgresql://host/db or http://host:5000"
        )
    return normalize_db_url(uri)


def _pool_settings(environ) -> None:
    """How MLflow pools connections when workers log straight to PostgreSQL: at most one idle
    connection each (none with TORNADOSTUDY_DB_POOL=0). On a cluster the MLflow server pools for all."""
    if environ.get("TORNADOSTUDY_DB_POOL", "1").strip() == "0":
        environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
    elif "MLFLOW_SQLALCHEMYSTORE_POOLCLASS" not in environ:  # a pool class of the user's own: leave it alone
        environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "1")
        environ.setdefault("MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW", "2")
        environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOL_RECYCLE", "300")


# The spooled writes that go into one log_batch call (MlflowClient.log_batch splits a call into MLflow's limits).
BATCHED_OPS = frozenset({"params", "metrics", "history", "tags"})


def merge_writes(ops: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A run's waiting writes, in order, in groups of one ``log_batch`` call each: a trial's params, epochs and
    final numbers become one call when they wait together (a busy delivery thread, a replay after an outage).
    Creating and closing the run are calls of their own."""
    groups: list[list[dict[str, Any]]] = []
    for op in ops:
        if op["op"] in BATCHED_OPS and groups and groups[-1][-1]["op"] in BATCHED_OPS:
            groups[-1].append(op)
        else:
            groups.append([op])
    return groups


def _metrics_op(metrics: dict[str, float], step: int, tags: dict[str, Any] | None) -> dict[str, Any]:
    op = {"op": "metrics", "metrics": {k: float(v) for k, v in metrics.items()}, "step": step, "ts": _now_ms()}
    if tags:
        op["tags"] = {k: str(v) for k, v in tags.items()}
    return op


def _now_ms() -> int:
    return int(time.time() * 1000)


class Tracker:
    """A thin wrapper over MLflow's clients that speaks in studies and trials."""

    def __init__(
        self,
        uri: str,
        spool: Spool | None = None,
        own_retries: bool = False,
        alive_every_s: float = 30.0,
    ) -> None:
        """``own_retries``: the caller retries or spools every call itself (a worker), so by default MLflow's
        HTTP client does not re-send on its own (a create re-sent after a late answer makes a second run; the
        run key finds and deletes it). With a ``spool``, every write is appended to it and delivered by a
        background thread (:mod:`tornadostudy.tracking.delivery`): the one way writes reach MLflow, for workers
        and for commands that close or deliver other workers' runs. Without one, each call goes to MLflow at once
        and raises if it fails (creating a study, reports, reading). MLflow's environment variables the
        user set are honoured, never overwritten: these are defaults."""
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        # Closing a run would otherwise fetch the whole run back to print its link: one more round trip per
        # trial, and a line per trial in every worker's log (the worker says itself when a trial ends).
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        if uri.startswith("http"):
            # Fail fast and let the spool keep the writes, instead of blocking training for minutes in
            # the client's own retry loop while the server is away.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0" if own_retries else "1")
            # A busy server may take long to answer; a stopped server fails at once.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        if uri.startswith("postgresql"):
            _pool_settings(os.environ)
        self.uri = uri
        self._client = None
        self.writer = self.client  # opened now: a bad URI is an error here, not at the first write
        from mlflow.entities import Metric, Param, RunTag

        self._entities = (Metric, Param, RunTag)
        self.runs = RunBook(self._create_run, self.runs_with_key, self.drop_duplicate_runs)
        self.spool = spool
        self.deliverer = None
        if spool is not None:
            from tornadostudy.tracking.delivery import Deliverer, linger_s

            self.deliverer = Deliverer(spool, self._apply, alive_every_s, merge_writes, linger_s())

    @property
    def client(self):
        """MLflow's own client."""
        if self._client is None:
            try:
                from mlflow import MlflowClient

                self._client = MlflowClient(tracking_uri=self.uri)
            except Exception as exc:
                if "unsupported uri" in str(exc).lower():
                    raise UserInputError(
                        f"tracking URI {mask_url(self.uri)!r} has a scheme MLflow does not support: use "
                        "http(s)://host:5000 (an MLflow server), sqlite:///mlflow.db or postgresql://user@host/db"
                    ) from None
                raise TrackingError(f"cannot open MLflow tracking at {mask_url(self.uri)}: {exc}") from exc
        return self._client

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            permanent = getattr(exc, "error_code", None) in _REFUSALS
            raise TrackingError(f"MLflow ({mask_url(self.uri)}) failed to {what}: {exc}", permanent=permanent) from exc

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
            # The experiment kind makes the MLflow UI open on the runs table (not its GenAI pages).
            tags = {"tornadostudy.study": name, "mlflow.experimentKind": "custom_model_development"}
            return self.client.create_experiment(name, tags=tags), True
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
        self._call("delete the run", self.writer.delete_run, run_id)

    # --- trials ----------------------------------------------------------------------------------
    def open_trial_run(
        self,
        experiment_id: str,
        parent_run_id: str | None,
        run_name: str,
        params: dict[str, Any],
        tags: dict[str, Any],
        run_key: str | None = None,
        on_made: Callable[[str], None] | None = None,
    ) -> str:
        """A trial's run, tagged with ``run_key``, named by the ref that its writes go to. With a spool
        the delivery thread makes it (:mod:`tornadostudy.tracking.run_refs`) and nothing waits here; without
        one it is made now. ``on_made(run_id)``: called once the run
        exists. Its params are the run's first write (logging the same params again is allowed)."""
        ref, create = self._trial_run(experiment_id, parent_run_id, run_name, tags, run_key, False, on_made)
        self._deliver(ref, create)
        self._deliver(ref, {"op": "params", "params": {k: str(v) for k, v in sorted(params.items())}})
        return ref

    def start_trial_run(
        self,
        experiment_id: str,
        parent_run_id: str | None,
        run_name: str,
        params: dict[str, Any],
        tags: dict[str, Any],
        run_key: str | None = None,
        reuse: bool = False,
    ) -> str:
        """A trial's run made now (an error raises), returning its id. With ``reuse`` (a retry after a
        failed attempt) a run already made under the key, its answer lost on the way back, is taken."""
        ref, create = self._trial_run(experiment_id, parent_run_id, run_name, tags, run_key, reuse, None)
        run_id = self.runs.create(ref, create)
        self._deliver(run_id, {"op": "params", "params": {k: str(v) for k, v in sorted(params.items())}})
        return run_id

    def _trial_run(self, experiment_id, parent_run_id, run_name, tags, run_key, reuse, on_made):
        """The ref of a new trial run and the write that creates it."""
        run_key = run_key or new_run_key()
        ref = run_ref(experiment_id, run_key)
        all_tags = {"tornadostudy.role": "trial", **{k: str(v) for k, v in tags.items()}, RUN_KEY_TAG: run_key}
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        self.runs.expect(ref, reuse, on_made)
        return ref, {"op": "create", "run_name": run_name, "tags": all_tags, "ts": _now_ms()}

    def run_id(self, ref: str) -> str | None:
        """The MLflow run id a ref names, once the run is made (never waits for MLflow)."""
        return self.runs.known(ref)

    def _create_run(self, experiment_id: str, op: dict[str, Any]) -> str:
        run = self._call(
            "create a trial run",
            self.writer.create_run,
            experiment_id,
            start_time=op["ts"],
            run_name=op["run_name"],
            tags=op["tags"],
        )
        return run.info.run_id

    def runs_with_key(self, experiment_id: str, run_key: str) -> list[str]:
        """Ids of the live runs tagged with ``run_key``, oldest first."""
        if not run_key.isalnum():  # keys are made by new_run_key(); never put other text into a filter
            raise TrackingError(f"run key {run_key!r} is not alphanumeric")
        runs = self._call(
            "look up a run by its key",
            self.writer.search_runs,
            [experiment_id],
            filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'",
            order_by=["attributes.start_time ASC"],
            max_results=100,
        )
        return [r.info.run_id for r in runs]

    def drop_duplicate_runs(self, experiment_id: str, run_key: str, keep: str) -> list[str]:
        """Delete runs made under ``run_key`` other than ``keep`` — creates a timed-out attempt left
        behind, which the server finished after the retry looked. Returns the deleted ids."""
        extra = [run_id for run_id in self.runs_with_key(experiment_id, run_key) if run_id != keep]
        for run_id in extra:
            log.warning("deleting duplicate MLflow run %s (same trial as %s)", run_id, keep)
            self._call("delete a duplicate run", self.writer.delete_run, run_id)
        return extra

    # Writes to an existing run go through _deliver: with a spool they survive a tracking outage.
    def log_metrics(
        self, run_id: str, metrics: dict[str, float], step: int = 0, tags: dict[str, Any] | None = None
    ) -> bool:
        """All metrics of one step (an epoch, or the final numbers at step 0), and any tags, in one call."""
        return self._deliver(run_id, _metrics_op(metrics, step, tags))

    def log_history(self, run_id: str, history: list[dict[str, float]], first_step: int = 1) -> bool:
        """Many epochs at once (a resumed trial's earlier epochs), in batches MLflow accepts."""
        ts = _now_ms()
        entries = [(first_step + i, k, float(v)) for i, m in enumerate(history) for k, v in sorted(m.items())]
        delivered = True
        for start in range(0, len(entries), 900):
            delivered &= self._deliver(run_id, {"op": "history", "entries": entries[start : start + 900], "ts": ts})
        return delivered

    def log_final(self, run_id: str, metrics: dict[str, float], tags: dict[str, Any]) -> bool:
        """A trial's final numbers (step 0) and its tags in one call; durable (``_deliver``)."""
        return self._deliver(run_id, _metrics_op(metrics, 0, tags), durable=True)

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> bool:
        return self._deliver(run_id, {"op": "tags", "tags": {k: str(v) for k, v in tags.items()}})

    def end_run(self, run_id: str, status: str = "FINISHED") -> bool:
        """Close a run as FINISHED, FAILED or KILLED (durable with the run's earlier writes)."""
        return self._deliver(run_id, {"op": "end", "status": status, "ts": _now_ms()}, durable=True)

    def _apply(self, ref: str, op: dict[str, Any]) -> None:
        """Deliver one spooled write (or merged call) to the run ``ref`` names."""
        Metric, Param, RunTag = self._entities
        if op["op"] == "create":
            self.runs.create(ref, op)
            return
        run_id = self.runs.resolve(ref)
        if op["op"] == "end":
            self.runs.before_end(ref, run_id)
            self._call("end the run", self.writer.set_terminated, run_id, status=op["status"], end_time=op["ts"])
            return
        if op["op"] != "batch" and op["op"] not in BATCHED_OPS:
            raise TrackingError(f"unknown spooled write {op['op']!r}")
        params: dict[str, str] = {}
        metrics: list[Metric] = []
        tags: dict[str, str] = {}
        for write in op["ops"] if op["op"] == "batch" else [op]:
            for key, value in write.get("params", {}).items():
                params.setdefault(key, value)  # MLflow refuses a repeated key in one call; a param is set once
            if write["op"] == "metrics":  # with "tags" too for a trial's final write
                metrics += [Metric(k, v, write["ts"], write["step"]) for k, v in sorted(write["metrics"].items())]
            elif write["op"] == "history":
                metrics += [Metric(k, v, write["ts"], step) for step, k, v in write["entries"]]
            tags.update(write.get("tags", {}))  # a later tag of the same key wins, as if written one by one
        self._call(
            "log to the run",
            self.writer.log_batch,
            run_id,
            metrics=metrics,
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )

    def _deliver(self, run_id: str, op: dict[str, Any], durable: bool = False) -> bool:
        """With a spool: append the write for the delivery thread (it survives the process being killed; a
        ``durable`` one — final numbers, a run's end — is synced to disk with the run's earlier writes: a sync
        per trial, not per epoch). Without one: deliver it now; errors raise. True either way."""
        if self.deliverer is not None:
            self.spool.append(run_id, op, durable=durable)
            self.deliverer.notify()
        else:
            self._apply(run_id, op)
        return True

    def flush(self, wait_s: float = 60.0) -> list[str]:
        """Let the delivery thread deliver every spooled run now, waiting at most ``wait_s``; returns the run
        ids still waiting."""
        return self.deliverer.drain(wait_s) if self.deliverer is not None else []

    def adopt_orphaned_spools(self, stale_s: float) -> int:
        """Deliver (in the background) the spooled writes of workers to this URI that are gone."""
        if self.deliverer is None:
            return 0
        adopted = Spool.adopt_orphans(self.spool.folder.parent, self.uri, stale_s, exclude=self.spool.folder)
        for spool in adopted:
            close_abandoned_runs(spool)
        self.deliverer.adopt(adopted)
        return len(adopted)

    def close(self, wait_s: float = 0.0) -> list[str]:
        """Stop background delivery after waiting at most ``wait_s`` for it; the run ids still waiting. Runs
        whose creation may have been sent twice are checked for duplicates once more."""
        if self.deliverer is None:
            return []
        left = self.deliverer.close(wait_s)
        if wait_s:
            self.runs.sweep()
        if not left:
            self.spool.remove_if_empty()
        return left

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

    def runs_by_key(self, experiment_id: str) -> dict[str, str]:
        """Run key -> run id of the experiment's live trial runs (the oldest run of a key)."""
        by_key: dict[str, str] = {}
        for run in sorted(self.trial_runs(experiment_id), key=lambda r: r.info.start_time or 0):
            if key := run.data.tags.get(RUN_KEY_TAG):
                by_key.setdefault(key, run.info.run_id)
        return by_key

    def metric_history(self, run_id: str, key: str) -> list[Any]:
        return self._call("read a metric history", self.client.get_metric_history, run_id, key)

    def curve(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """One metric of one run as (step, value), steps ascending (the last write of a step wins)."""
        by_step: dict[int, float] = {}
        for m in sorted(self.metric_history(run_id, key), key=lambda m: (m.step, m.timestamp)):
            by_step[int(m.step)] = float(m.value)
        return sorted(by_step.items())

    def replace_report_run(self, experiment_id: str, parent_run_id: str, folder, files) -> str:
        """A new run 'report' under the study's run holding ``files`` (paths inside ``folder``) as artifacts
        ``report/...``; earlier report runs are deleted once it is made, so one set of report artifacts is left.
        Returns the new run's id."""
        from pathlib import Path

        earlier = self._call(
            "look up earlier reports",
            self.client.search_runs,
            [experiment_id],
            filter_string="tags.`tornadostudy.role` = 'report'",
            max_results=100,
        )
        tags = {"tornadostudy.role": "report", PARENT_TAG: parent_run_id}
        run = self._call("create the report run", self.client.create_run, experiment_id, run_name="report", tags=tags)
        run_id = run.info.run_id
        for path in files:
            inside = Path(path).relative_to(folder).parent
            target = "report" if str(inside) == "." else f"report/{inside.as_posix()}"
            self._call("upload the report", self.client.log_artifact, run_id, str(path), target)
        self._call("close the report run", self.client.set_terminated, run_id, "FINISHED")
        for old in earlier:
            self._call("delete an earlier report", self.client.delete_run, old.info.run_id)
        return run_id

    def log_artifacts(self, run_id: str, folder: str, artifact_path: str) -> None:
        """Upload ``folder`` under ``artifact_path`` of the run (files of the same name are replaced)."""
        self._call("upload artifacts", self.client.log_artifacts, run_id, folder, artifact_path)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        return [f.path for f in self._call("list artifacts", self.client.list_artifacts, run_id, path)]
