"""Background delivery of spooled tracking writes, with a fake MLflow (the real one: test_tracking.py)."""

import threading

import pytest

from tornadostudy.errors import UserInputError
from tornadostudy.tracking.delivery import Deliverer, linger_s
from tornadostudy.tracking.spool import Spool


class FakeMlflow:
    def __init__(self):
        self.up = threading.Event()
        self.up.set()
        self.received = []

    def apply(self, run_id, op):
        if not self.up.is_set():
            raise ConnectionError("connection refused")
        self.received.append((run_id, op["step"]))


def test_writes_are_delivered_in_order_in_the_background(tmp_path):
    mlflow, spool = FakeMlflow(), Spool(tmp_path / "me")
    deliverer = Deliverer(spool, mlflow.apply)
    for step in range(1, 51):
        spool.append("a" if step % 2 else "b", {"step": step})
        deliverer.notify()
    assert deliverer.drain(30) == []
    assert [s for r, s in mlflow.received if r == "a"] == list(range(1, 51, 2))
    assert [s for r, s in mlflow.received if r == "b"] == list(range(2, 51, 2))
    assert spool.runs() == []
    deliverer.close()


def test_writes_wait_on_disk_while_mlflow_is_away_and_arrive_once_it_is_back(tmp_path, caplog):
    mlflow, spool = FakeMlflow(), Spool(tmp_path / "me")
    deliverer = Deliverer(spool, mlflow.apply)
    mlflow.up.clear()
    for step in (1, 2, 3):
        spool.append("a", {"step": step})
        deliverer.notify()
    assert deliverer.drain(0.5) == ["a"], "nothing is delivered, nothing is dropped"
    assert mlflow.received == [] and spool.pending("a")
    assert any("spooling writes" in r.message for r in caplog.records)
    mlflow.up.set()
    assert deliverer.drain(30) == []  # drain cuts the back-off short
    assert mlflow.received == [("a", 1), ("a", 2), ("a", 3)]
    deliverer.close()


def test_adopted_spools_are_delivered_and_removed(tmp_path):
    mlflow = FakeMlflow()
    orphan = Spool(tmp_path / "node1-42~me")
    orphan.append("z", {"step": 7})
    deliverer = Deliverer(Spool(tmp_path / "me"), mlflow.apply)
    deliverer.adopt([orphan])
    assert deliverer.drain(30) == []
    assert mlflow.received == [("z", 7)] and not orphan.folder.exists()
    deliverer.close()


def test_drain_does_not_report_idle_before_a_write_made_during_a_pass(tmp_path, caplog):
    spool = Spool(tmp_path / "me")
    second_write_made = threading.Event()
    received = []

    def slow_apply(run_id, op):
        received.append(op["step"])
        if op["step"] == 1:  # while this pass runs, the trial writes again
            spool.append("a", {"step": 2})
            deliverer.notify()
            second_write_made.set()

    deliverer = Deliverer(spool, slow_apply)
    spool.append("a", {"step": 1})
    deliverer.notify()
    second_write_made.wait(10)
    assert deliverer.drain(30) == [] and received == [1, 2]
    assert not [r.message for r in caplog.records if "unreachable" in r.message], "a busy spool is no outage"
    deliverer.close()


def test_writes_that_arrive_close_together_are_delivered_in_one_call(tmp_path):
    spool, calls = Spool(tmp_path / "me"), []
    deliverer = Deliverer(spool, lambda run_id, op: calls.append(op), merge=lambda ops: [ops], linger_s=30.0)
    for step in (1, 2, 3):
        spool.append("a", {"op": "metrics", "step": step})
        deliverer.notify()
    assert deliverer.drain(30) == [], "draining cuts the lingering short"
    assert calls == [{"op": "batch", "ops": [{"op": "metrics", "step": s} for s in (1, 2, 3)]}]
    deliverer.close()


@pytest.mark.parametrize("text", ["soon", "-1", "nan", "600"])
def test_a_bad_linger_setting_is_a_one_line_error_naming_it(monkeypatch, text):
    monkeypatch.setenv("TORNADOSTUDY_TRACKING_LINGER_S", text)
    with pytest.raises(UserInputError, match=r"TORNADOSTUDY_TRACKING_LINGER_S=.*use"):
        linger_s()
