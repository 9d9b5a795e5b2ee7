from tornadostudy.spool import Spool


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
