import json
import os
import socket
import subprocess
import time

from tornadostudy.tracking.spool import Spool


def test_spooled_writes_replay_in_order_and_resume_where_they_stopped(tmp_path):
    spool = Spool(tmp_path / "s")
    for step in range(1, 6):
        spool.append("run1", {"op": "metrics", "step": step})
    assert spool.pending("run1") and spool.runs() == ["run1"]
    delivered = []

    def flaky(op):
        if op["step"] == 3 and not delivered.count("fail-once"):
            delivered.append("fail-once")
            raise ConnectionError("server away")
        delivered.append(op["step"])

    assert not spool.replay("run1", flaky)
    assert delivered == [1, 2, "fail-once"]
    assert spool.replay("run1", flaky)
    assert delivered == [1, 2, "fail-once", 3, 4, 5]
    assert not spool.pending("run1") and spool.runs() == []


def test_each_process_gets_its_own_folder_and_no_password_is_noted(tmp_path):
    spool = Spool.for_this_process(tmp_path, uri="postgresql+psycopg2://me:hunter2@db/mlflow")
    spool.append("r", {"op": "end"})
    assert Spool.folders(tmp_path) == [spool.folder]
    assert Spool.stored_uri(spool.folder) == "postgresql+psycopg2://me@db/mlflow"


def test_writes_appended_during_a_replay_wait_for_the_next_one(tmp_path):
    spool = Spool(tmp_path / "s")
    spool.append("run1", {"op": "metrics", "step": 1})
    delivered = []

    def deliver_while_the_trial_writes(op):
        delivered.append(op["step"])
        if op["step"] == 1:
            spool.append("run1", {"op": "metrics", "step": 2})  # the trial's thread, meanwhile

    assert spool.replay("run1", deliver_while_the_trial_writes), "nothing failed"
    assert delivered == [1] and spool.pending("run1")
    assert spool.replay("run1", deliver_while_the_trial_writes)
    assert delivered == [1, 2] and not spool.pending("run1")


def test_a_torn_last_write_is_ignored_and_a_refused_write_is_set_aside(tmp_path):
    spool = Spool(tmp_path / "s")
    for step in (1, 2, 3):
        spool.append("run1", {"op": "metrics", "step": step})
    with open(tmp_path / "s" / "run1.jsonl", "a") as fh:
        fh.write('{"op": "metr')  # the process was killed inside this write
    delivered = []

    def refuse_step_2(op):
        if op["step"] == 2:
            raise _Refused("RESOURCE_DOES_NOT_EXIST")
        delivered.append(op["step"])

    assert spool.replay("run1", refuse_step_2)
    assert delivered == [1, 3] and not spool.pending("run1")
    rejected = (tmp_path / "s" / "run1.rejected").read_text().splitlines()
    assert [json.loads(line)["step"] for line in rejected] == [2]


class _Refused(Exception):
    permanent = True


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _orphan(root, name, uri="sqlite:///m.db"):
    spool = Spool(root / name)
    spool.uri = uri
    spool.append("run1", {"op": "end"})
    return spool


def test_only_spools_of_workers_that_are_gone_are_adopted_once(tmp_path):
    host = socket.gethostname()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        dead = _orphan(tmp_path, f"{host}-{_dead_pid()}")
        _orphan(tmp_path, f"{host}-{alive.pid}")  # still running
        _orphan(tmp_path, f"{host}-{_dead_pid()}", uri="http://other-server:5000")  # another tracking server
        fresh = _orphan(tmp_path, "node7-123")  # another host, touched just now
        fresh.touch_alive()
        stale = _orphan(tmp_path, "node8-456")  # another host, silent for 10 minutes
        stale.touch_alive()
        os.utime(stale.folder / "alive", (time.time() - 600, time.time() - 600))

        adopted = Spool.adopt_orphans(tmp_path, "sqlite:///m.db", stale_s=300)
        names = sorted(s.folder.name for s in adopted)
        me = f"{host}-{os.getpid()}"
        assert names == sorted([f"{dead.folder.name}~{me}", f"node8-456~{me}"])
        assert all(s.runs() == ["run1"] and s.uri == "sqlite:///m.db" for s in adopted)
        assert Spool.adopt_orphans(tmp_path, "sqlite:///m.db", stale_s=300) == []  # ours now, and we are alive
    finally:
        alive.kill()
        alive.wait()


def test_an_adopted_spool_whose_adopter_died_is_adopted_again_under_its_first_name(tmp_path):
    host = socket.gethostname()
    _orphan(tmp_path, f"{host}-1~{host}-{_dead_pid()}")
    (adopted,) = Spool.adopt_orphans(tmp_path, None, stale_s=300)
    assert adopted.folder.name == f"{host}-1~{host}-{os.getpid()}"
    adopted.replay("run1", lambda op: None)
    adopted.remove_if_empty()
    assert not adopted.folder.exists()


def test_a_merged_group_refused_for_good_is_retried_write_by_write_and_an_outage_keeps_it_whole(tmp_path):
    spool = Spool(tmp_path / "s")
    for step in (1, 2, 3):
        spool.append("run1", {"op": "metrics", "step": step})
    calls = []

    def away(op):
        calls.append(op["op"])
        raise ConnectionError("server away")

    assert not spool.replay("run1", away, merge=lambda ops: [ops])
    waiting = (tmp_path / "s" / "run1.jsonl").read_text().splitlines()
    assert calls == ["batch"] and len(waiting) == 3, "nothing delivered, nothing lost"

    def refuse_step_2(op):
        calls.append(op.get("step", op["op"]))
        if op["op"] == "batch" or op["step"] == 2:
            raise _Refused("INVALID_PARAMETER_VALUE")

    calls.clear()
    assert spool.replay("run1", refuse_step_2, merge=lambda ops: [ops])
    assert calls == ["batch", 1, 2, 3] and not spool.pending("run1")
    rejected = (tmp_path / "s" / "run1.rejected").read_text().splitlines()
    assert [json.loads(line)["step"] for line in rejected] == [2]


def test_the_empty_folder_of_a_worker_that_is_gone_is_removed(tmp_path):
    """A killed worker whose writes were all delivered leaves a folder with no writes: it is removed."""
    host = socket.gethostname()
    gone = Spool(tmp_path / f"{host}-{_dead_pid()}")
    gone.touch_alive()
    (gone.folder / "tracking_uri").write_text("sqlite:///m.db")
    kept = Spool(tmp_path / f"{host}-{_dead_pid()}")  # a refused write stays for a person to look at
    kept.touch_alive()
    (kept.folder / "run9.rejected").write_text("{}\n")
    mine = Spool(tmp_path / f"{host}-{os.getpid()}")  # a live worker's empty folder stays
    mine.touch_alive()
    assert Spool.adopt_orphans(tmp_path, "sqlite:///m.db", stale_s=300) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([kept.folder.name, mine.folder.name])
