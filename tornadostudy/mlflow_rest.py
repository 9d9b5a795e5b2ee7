"""A worker's MLflow writes over the tracking server's REST API (2.0), without importing mlflow.

Importing mlflow costs an interpreter about 2 s of CPU (it loads pandas and its GenAI modules); a
worker that logs to an ``mlflow server`` needs five of the server's documented calls: create, search,
log-batch, update and delete a run. Measured here, a worker's start-up falls from ~3.9 to ~1.7 s of
CPU — paid by every array task, and by every one of several workers sharing a node's cores. Everything
else (experiments, reading runs, artifacts) still goes through ``MlflowClient`` in :mod:`tornadostudy.tracking`.

The calls mirror ``MlflowClient``'s signatures and MLflow's HTTP settings (``MLFLOW_HTTP_REQUEST_*``,
``MLFLOW_TRACKING_TOKEN``/``USERNAME``/``PASSWORD``, ``MLFLOW_TRACKING_INSECURE_TLS``, the certificate
paths). A set-up this client does not speak (an auth plugin, AWS SigV4, workspaces, a credentials file,
a request-header plugin) keeps the full client: :func:`speaks`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["Metric", "Param", "RestClient", "RestError", "RunTag", "speaks"]

# Settings whose meaning only MLflow's own client knows: with any of them set, use it.
_FULL_CLIENT_SETTINGS = ("MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_AWS_SIGV4", "MLFLOW_WORKSPACE")
# As MLflow: statuses worth sending again, and the error code a bare status stands for.
_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
_STATUS_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "ENDPOINT_NOT_FOUND",
                 409: "RESOURCE_CONFLICT", 429: "REQUEST_LIMIT_EXCEEDED", 501: "NOT_IMPLEMENTED",
                 503: "TEMPORARILY_UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip
_JSON = {"Content-Type": "application/json"}


class Metric(NamedTuple):  # the fields of mlflow.entities.Metric that log_batch sends
    key: str
    value: float
    timestamp: int
    step: int


class Param(NamedTuple):
    key: str
    value: str


class RunTag(NamedTuple):
    key: str
    value: str


@dataclass(frozen=True)
class RunInfo:
    run_id: str


@dataclass(frozen=True)
class Run:
    info: RunInfo


class RestError(Exception):
    """A refused or failed call; ``error_code`` as MLflow names it (None: no answer at all)."""

    def __init__(self, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


def speaks(uri: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this client can stand in for MlflowClient's writes to ``uri``."""
    if not uri.startswith(("http://", "https://")) or environ.get("TORNADOSTUDY_MLFLOW_REST", "1").strip() == "0":
        return False
    if any(environ.get(name) for name in _FULL_CLIENT_SETTINGS):
        return False
    if (Path(environ.get("HOME", "~")).expanduser() / ".mlflow" / "credentials").exists():
        return False
    from importlib.metadata import entry_points

    return not entry_points(group="mlflow.request_header_provider")


def _number(value: float) -> float | str:
    """JSON has no NaN or infinity; protobuf's JSON form, which the server parses, writes them as strings."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _pairs(items: Iterable[Any]) -> list[dict[str, str]]:
    return [{"key": item.key, "value": item.value} for item in items]


class RestClient:
    def __init__(self, uri: str, environ: Mapping[str, str] = os.environ) -> None:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.base = uri.rstrip("/") + "/api/2.0/mlflow/"
        retries = int(environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7"))
        policy = dict(total=retries, connect=retries, read=retries, redirect=retries, status=retries,
                      status_forcelist=_TRANSIENT, allowed_methods=None, raise_on_status=False,
                      backoff_factor=float(environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "2")))  # fmt: skip
        try:
            retry = Retry(**policy, backoff_jitter=float(environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "1")))
        except TypeError:  # urllib3 1.26 has no jitter
            retry = Retry(**policy)
        self.timeout = float(environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "120"))
        self.session = requests.Session()
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, HTTPAdapter(max_retries=retry))
        if token := environ.get("MLFLOW_TRACKING_TOKEN"):
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif environ.get("MLFLOW_TRACKING_USERNAME") and environ.get("MLFLOW_TRACKING_PASSWORD"):
            self.session.auth = (environ["MLFLOW_TRACKING_USERNAME"], environ["MLFLOW_TRACKING_PASSWORD"])
        if environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            self.session.verify = False
        elif server_cert := environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
            self.session.verify = server_cert
        if client_cert := environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"):
            self.session.cert = client_cert

    def _post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        import requests

        try:
            data = json.dumps(body, allow_nan=False)
            response = self.session.post(self.base + endpoint, data=data, headers=_JSON, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RestError(f"API request to {endpoint} failed: {exc}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code == 200:
            return answer if isinstance(answer, dict) else {}
        if isinstance(answer, dict) and "error_code" in answer:
            raise RestError(f"{answer['error_code']}: {answer.get('message', '')}", answer["error_code"])
        code = _STATUS_CODES.get(response.status_code, "INTERNAL_ERROR")
        raise RestError(f"API request to {endpoint} failed with error code {response.status_code}: "
                        f"{response.text[:500]}", code)  # fmt: skip

    def create_run(self, experiment_id: str, start_time: int | None = None, tags: Mapping[str, str] | None = None,
                   run_name: str | None = None) -> Run:  # fmt: skip
        tags = dict(tags or {})
        body = {"experiment_id": str(experiment_id), "user_id": tags.get("mlflow.user", "unknown"),
                "start_time": start_time or int(time.time() * 1000),
                "tags": [{"key": k, "value": v} for k, v in tags.items()]}  # fmt: skip
        if run_name is not None:
            body["run_name"] = run_name
        run_id = self._post("runs/create", body).get("run", {}).get("info", {}).get("run_id")
        if not run_id:  # e.g. a proxy's page instead of MLflow's answer: the caller's retry finds the run by its key
            raise RestError("API request to runs/create answered without a run id", "INTERNAL_ERROR")
        return Run(RunInfo(run_id))

    def search_runs(self, experiment_ids: list[str], filter_string: str = "", order_by: list[str] | None = None,
                    max_results: int = 1000) -> list[Run]:  # fmt: skip
        """Active runs only, one page (as MlflowClient: ``max_results`` of them)."""
        body = {"experiment_ids": [str(e) for e in experiment_ids], "filter": filter_string,
                "run_view_type": "ACTIVE_ONLY", "max_results": max_results,
                "order_by": list(order_by or [])}  # fmt: skip
        return [Run(RunInfo(run["info"]["run_id"])) for run in self._post("runs/search", body).get("runs", [])]

    def log_batch(self, run_id: str, metrics: Iterable[Metric] = (), params: Iterable[Param] = (),
                  tags: Iterable[RunTag] = ()) -> None:  # fmt: skip
        body = {"run_id": run_id, "params": _pairs(params), "tags": _pairs(tags),
                "metrics": [{"key": m.key, "value": _number(m.value), "timestamp": m.timestamp, "step": m.step}
                            for m in metrics]}  # fmt: skip
        self._post("runs/log-batch", body)

    def set_terminated(self, run_id: str, status: str = "FINISHED", end_time: int | None = None) -> None:
        body = {"run_id": run_id, "run_uuid": run_id, "status": status, "end_time": end_time or int(time.time() * 1000)}
        self._post("runs/update", body)

    def delete_run(self, run_id: str) -> None:
        self._post("runs/delete", {"run_id": run_id})
