"""An ordered, on-disk journal of a process's tracking writes.

One JSON-lines file per run. A worker appends every write here first and a background thread delivers
it (:mod:`tornadostudy.tracking.delivery`); it syncs the file to disk with a trial's final numbers and its run's
end (a sync per epoch cost a trial more than its claim did). Other callers append, synced, only what
they could not deliver. Either way every run's writes reach MLflow in their original order, and a write
survives its process being killed. Each write carries its own timestamp, so a replay that repeats an
already-delivered write stores the same metric row again, which MLflow de-duplicates.

A process's folder is ``<host>-<pid>``. When that process is gone its folder is adopted: renamed to
``<host>-<pid>~<adopter host>-<adopter pid>`` (a rename, so only one adopter wins) and delivered by the
adopter. ``tornadostudy tracking sync`` adopts and delivers whatever is left by hand.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tornadostudy.urls import strip_password

__all__ = ["Spool", "default_spool_root"]

log = logging.getLogger(__name__)

ALIVE_FILE = "alive"  # touched by the owner's delivery thread: how other hosts tell a live folder


def default_spool_root() -> Path:
    return Path(os.environ.get("TORNADOSTUDY_SPOOL_DIR") or Path.cwd() / ".tornadostudy" / "spool")


def _this_process() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _owner(folder: Path) -> tuple[str, int] | None:
    """(host, pid) of the process that owns the folder now: its adopter if it was adopted."""
    host, _, pid = folder.name.rsplit("~", 1)[-1].rpartition("-")
    return (host, int(pid)) if host and pid.isdigit() else None


def _fs_now(root: Path) -> float:
    """The file system's clock (a shared file system's server may disagree with this host's clock)."""
    probe = root / f".clock-{_this_process()}-{uuid.uuid4().hex[:8]}"
    probe.touch()
    try:
        return probe.stat().st_mtime
    finally:
        probe.unlink()


def _attempt(apply: Callable[[dict[str, Any]], None], op: dict[str, Any], run_id: str) -> Exception | None:
    """Deliver one write (or merged call); the error if it failed, logged when it is not a refusal for good."""
    try:
        apply(op)
        return None
    except Exception as exc:
        if not getattr(exc, "permanent", False):
            log.debug("spool for run %s still blocked: %s", run_id, exc)
        return exc


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        # The delivery thread rewrites a file while the trial's thread appends to it.
        self._lock = threading.Lock()

    @classmethod
    def for_this_process(cls, root: Path | None = None, uri: str | None = None) -> Spool:
        """A private sub-folder per worker process, so two workers never replay the same file. The
        tracking URI (without any password) is noted beside it for adopters and ``tracking sync``."""
        spool = cls((root or default_spool_root()) / _this_process())
        spool.uri = strip_password(uri) if uri else None
        return spool

    uri: str | None = None

    def _note_uri(self) -> None:
        if self.uri and not (self.folder / "tracking_uri").exists():
            (self.folder / "tracking_uri").write_text(self.uri + "\n")

    @staticmethod
    def stored_uri(folder: Path) -> str | None:
        path = Path(folder) / "tracking_uri"
        return path.read_text().strip() if path.exists() else None

    @staticmethod
    def folders(root: Path | None = None) -> list[Path]:
        root = root or default_spool_root()
        return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []

    def _path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.jsonl"

    def pending(self, run_id: str) -> bool:
        return self._path(run_id).exists()

    def runs(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.jsonl")) if self.folder.exists() else []

    def writes(self, run_id: str) -> list[dict[str, Any]]:
        """The run's writes still waiting, in order."""
        with self._lock:
            return self._read(self._path(run_id))

    def append(self, run_id: str, op: dict[str, Any], durable: bool = True) -> None:
        """Append one write. Once this returns the write survives the process being killed (the kernel holds
        it); ``durable`` also syncs the file to disk, so that it and the run's earlier writes survive the node
        crashing too."""
        line = json.dumps(op) + "\n"
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._note_uri()
            with open(self._path(run_id), "a") as fh:
                fh.write(line)
                fh.flush()
                if durable:
                    os.fsync(fh.fileno())

    def _read(self, path: Path) -> list[dict[str, Any]]:
        ops = []
        lines = path.read_text().splitlines() if path.exists() else []
        for i, line in enumerate(lines):
            try:
                ops.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # the write its process was killed in: it never returned
                    log.warning("ignoring a torn last write in %s", path)
                    break
                raise
        return ops

    def replay(
        self,
        run_id: str,
        apply: Callable[[dict[str, Any]], None],
        merge: Callable[[list[dict[str, Any]]], list[list[dict[str, Any]]]] | None = None,
    ) -> bool:
        """Deliver the run's writes in order; False if one could not be delivered (it and the later ones
        wait). Writes appended meanwhile (another thread) stay for the next replay. A write MLflow
        refuses for good (``exc.permanent``) is set aside in ``<run>.rejected`` with a warning instead
        of blocking the run's later writes forever.

        ``merge`` splits the writes, in order, into groups delivered as one ``{"op": "batch", "ops": …}``
        call each (one round trip instead of many); a group refused for good is retried write by write,
        so only the refused write is set aside."""
        path = self._path(run_id)
        with self._lock:
            ops = self._read(path)
        done, rejected = 0, []
        for group in merge(ops) if merge else [[op] for op in ops]:
            if len(group) > 1:
                error = _attempt(apply, {"op": "batch", "ops": group}, run_id)
                if error is None:
                    done += len(group)
                    continue
                if not getattr(error, "permanent", False):
                    break
            # One write, or a merged call refused for good: write by write, so only the refused one is set aside.
            for op in group:
                error = _attempt(apply, op, run_id)
                if error is not None and not getattr(error, "permanent", False):
                    break  # MLflow is away: this write and the later ones wait
                if error is not None:
                    log.warning(
                        "MLflow refused a %s write of run %s for good (%s); kept in %s",
                        op.get("op"),
                        run_id,
                        str(error)[:300],
                        path.with_suffix(".rejected"),
                    )
                    rejected.append(op)
                done += 1
            else:
                continue
            break
        with self._lock:
            if rejected:
                with open(path.with_suffix(".rejected"), "a") as fh:
                    fh.write("".join(json.dumps(o) + "\n" for o in rejected))
            rest = self._read(path)[done:]
            if rest:
                if done:
                    tmp = path.with_suffix(".tmp")
                    tmp.write_text("".join(json.dumps(o) + "\n" for o in rest))
                    tmp.replace(path)
            elif path.exists():
                path.unlink()
        return done == len(ops)

    # --- liveness and adoption ---------------------------------------------------------------------
    def touch_alive(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / ALIVE_FILE).touch()

    @staticmethod
    def is_live(folder: Path, stale_s: float, fs_now: Callable[[], float]) -> bool:
        """A folder of this host is live while its owner's pid runs; one of another host while its
        owner touched it within ``stale_s``, measured on the file system's own clock (``fs_now``)."""
        owner = _owner(folder)
        if owner is None:
            return True  # not a process folder: never touch it
        host, pid = owner
        if host == socket.gethostname():
            return _pid_alive(pid)
        marker = folder / ALIVE_FILE
        last = marker.stat().st_mtime if marker.exists() else folder.stat().st_mtime
        return fs_now() - last < stale_s

    @classmethod
    def adopt_orphans(cls, root: Path, uri: str | None, stale_s: float, exclude: Path | None = None) -> list[Spool]:
        """Take over the folders of processes that are gone and logged to ``uri`` (any URI if None). The folder
        of a process that is gone with every write delivered is removed."""
        adopted = []
        fs_now = functools.cache(lambda: _fs_now(root))  # one probe per pass, and only if another host's folder
        for folder in cls.folders(root):
            if folder == exclude:
                continue
            if not any(folder.glob("*.jsonl")):
                if not cls.is_live(folder, stale_s, fs_now):
                    cls(folder).remove_if_empty()  # kept only if it holds rejected writes
                continue
            if uri is not None and cls.stored_uri(folder) not in (None, strip_password(uri)):
                continue  # another tracking server's writes
            if cls.is_live(folder, stale_s, fs_now):
                continue
            target = folder.with_name(f"{folder.name.split('~')[0]}~{_this_process()}")
            try:
                folder.rename(target)
            except OSError:
                continue  # another adopter was first
            log.warning("adopting the tracking writes of a worker that is gone (%s)", folder.name)
            spool = cls(target)
            spool.uri = cls.stored_uri(target)
            spool.touch_alive()
            adopted.append(spool)
        return adopted

    def remove_if_empty(self) -> None:
        """An adopted folder, once delivered, is removed (its rejected writes, if any, keep it)."""
        if self.runs() or any(self.folder.glob("*.rejected")):
            return
        for name in (ALIVE_FILE, "tracking_uri"):
            (self.folder / name).unlink(missing_ok=True)
        try:
            self.folder.rmdir()
        except OSError:
            pass
