"""The REST client's requests, answers and errors, against a small HTTP server in the test (what a real
``mlflow server`` makes of them is in tests/integration/test_mlflow_rest_server.py)."""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tornadostudy.mlflow_rest import Metric, Param, RestClient, RestError, RunTag, speaks


class _Server:
    """Records each request; answers with ``self.answers[endpoint]`` = (status, body text)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict, dict]] = []
        self.answers: dict[str, tuple[int, str]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint = self.path.removeprefix("/api/2.0/mlflow/")
                server.requests.append((endpoint, body, dict(self.headers)))
                status, text = server.answers.get(endpoint, (200, "{}"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.http.shutdown()


QUICK = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def test_calls_send_what_mlflows_client_sends(server):
    server.answers["runs/create"] = (200, json.dumps({"run": {"info": {"run_id": "abc"}}}))
    runs = {"runs": [{"info": {"run_id": "r1"}}, {"info": {"run_id": "r2"}}]}
    server.answers["runs/search"] = (200, json.dumps(runs))
    client = RestClient(server.url, QUICK)
    assert client.create_run("7", run_name="trial 1", tags={"cell": "3"}).info.run_id == "abc"
    runs = client.search_runs(["7"], filter_string="tags.`k` = 'x'", order_by=["attributes.start_time ASC"])
    assert [r.info.run_id for r in runs] == ["r1", "r2"]
    client.log_batch("abc", metrics=[Metric("loss", 0.5, 1000, 1), Metric("loss", float("nan"), 1001, 2)],
                     params=[Param("lr", "0.001")], tags=[RunTag("done", "yes")])  # fmt: skip
    client.set_terminated("abc", status="KILLED", end_time=2000)
    client.delete_run("abc")
    sent = {endpoint: body for endpoint, body, _ in server.requests}
    assert sent["runs/create"]["experiment_id"] == "7" and sent["runs/create"]["run_name"] == "trial 1"
    assert sent["runs/create"]["tags"] == [{"key": "cell", "value": "3"}] and sent["runs/create"]["start_time"] > 0
    assert sent["runs/search"] == {"experiment_ids": ["7"], "filter": "tags.`k` = 'x'", "run_view_type": "ACTIVE_ONLY",
                                   "max_results": 1000, "order_by": ["attributes.start_time ASC"]}  # fmt: skip
    # JSON has no NaN: protobuf's JSON form (which the server parses) writes it as a string.
    assert sent["runs/log-batch"] == {
        "run_id": "abc", "params": [{"key": "lr", "value": "0.001"}], "tags": [{"key": "done", "value": "yes"}],
        "metrics": [{"key": "loss", "value": 0.5, "timestamp": 1000, "step": 1},
                    {"key": "loss", "value": "NaN", "timestamp": 1001, "step": 2}]}  # fmt: skip
    assert sent["runs/update"] == {"run_id": "abc", "run_uuid": "abc", "status": "KILLED", "end_time": 2000}
    assert sent["runs/delete"] == {"run_id": "abc"}


def test_refusals_carry_mlflows_error_code_and_a_bare_status_its_meaning(server):
    server.answers["runs/log-batch"] = (404, json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no run"}))
    server.answers["runs/update"] = (503, "<html>busy</html>")
    client = RestClient(server.url, QUICK)
    with pytest.raises(RestError, match="no run") as refused:
        client.log_batch("gone", metrics=[Metric("loss", 1.0, 1, 1)])
    assert refused.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(RestError, match="503") as busy:
        client.set_terminated("abc")
    assert busy.value.error_code == "TEMPORARILY_UNAVAILABLE"


def test_transient_answers_are_sent_again_as_many_times_as_mlflow_is_told(server):
    server.answers["runs/update"] = (503, "busy")
    client = RestClient(server.url, {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
                                     "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0"})  # fmt: skip
    with pytest.raises(RestError):
        client.set_terminated("abc")
    assert len(server.requests) == 3
    server.requests.clear()
    with pytest.raises(RestError):
        RestClient(server.url, QUICK).set_terminated("abc")  # a worker's setting: no re-send at all
    assert len(server.requests) == 1


def test_an_answer_without_a_run_id_is_an_error_not_a_crash(server):
    server.answers["runs/create"] = (200, "<html>login page</html>")
    with pytest.raises(RestError, match="without a run id"):
        RestClient(server.url, QUICK).create_run("7")


def test_no_server_is_an_error_without_an_error_code():
    with pytest.raises(RestError, match="runs/delete") as away:
        RestClient("http://127.0.0.1:9", QUICK).delete_run("abc")
    assert away.value.error_code is None


def test_credentials_go_in_the_headers_mlflow_uses(server):
    RestClient(server.url, {**QUICK, "MLFLOW_TRACKING_TOKEN": "t0k"}).delete_run("a")
    basic = {"MLFLOW_TRACKING_USERNAME": "ann", "MLFLOW_TRACKING_PASSWORD": "pw"}
    RestClient(server.url, {**QUICK, **basic}).delete_run("a")
    (_, _, token_headers), (_, _, basic_headers) = server.requests
    assert token_headers["Authorization"] == "Bearer t0k"
    assert basic_headers["Authorization"] == "Basic YW5uOnB3"  # base64("ann:pw")


@pytest.mark.parametrize(
    "uri, environ, expected",
    [
        ("http://host:5000", {}, True),
        ("https://host", {}, True),
        ("sqlite:///mlflow.db", {}, False),
        ("postgresql://host/db", {}, False),
        ("databricks", {}, False),
        ("http://host:5000", {"TORNADOSTUDY_MLFLOW_REST": "0"}, False),
        ("http://host:5000", {"MLFLOW_TRACKING_AUTH": "my_plugin"}, False),
        ("http://host:5000", {"MLFLOW_TRACKING_AWS_SIGV4": "true"}, False),
        ("http://host:5000", {"MLFLOW_WORKSPACE": "team"}, False),
    ],
)
def test_speaks_only_for_set_ups_it_knows(tmp_path, uri, environ, expected):
    assert speaks(uri, {"HOME": str(tmp_path), **environ}) is expected


def test_a_credentials_file_keeps_mlflows_own_client(tmp_path):
    (tmp_path / ".mlflow").mkdir()
    (tmp_path / ".mlflow" / "credentials").write_text("[mlflow]\nmlflow_tracking_username = ann\n")
    assert not speaks("http://host:5000", {"HOME": str(tmp_path)})


def test_a_worker_logging_to_a_server_does_not_import_mlflow(tmp_path):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tornadostudy.spool import Spool\n"
        "from tornadostudy.tracking import Tracker\n"
        f"spool = Spool.for_this_process(Path({str(tmp_path)!r}), uri='http://127.0.0.1:9')\n"
        "t = Tracker('http://127.0.0.1:9', spool=spool, own_retries=True, background=True)\n"
        "t.log_metrics('run', {'loss': 1.0}, step=1)\n"
        "t.end_run('run')\n"
        "t.close(0.5)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "[]"
