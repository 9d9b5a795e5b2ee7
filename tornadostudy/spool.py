"""An ordered, on-disk queue of tracking writes that could not be delivered (MLflow unreachable).

One JSON-lines file per run; a write is appended (and fsync-ed) when it cannot be delivered, or when
earlier writes of the same run are still waiting, so every run's writes reach MLflow in their original
order. Each write carries its own timestamp, so a replay that repeats an already-delivered write stores
the same metric row again, which MLflow de-duplicates. ``tornadostudy tracking sync`` replays whatever a
worker could not deliver before it exited.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tornadostudy.urls import strip_password

__all__ = ["Spool", "default_spool_root"]

log = logging.getLogger(__name__)


def default_spool_root() -> Path:
    return Path(os.environ.get("TORNADOSTUDY_SPOOL_DIR") or Path.cwd() / ".tornadostudy" / "spool")


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @classmethod
    def for_this_process(cls, root: Path | None = None, uri: str | None = None) -> Spool:
        """A private sub-folder per worker process, so two workers never replay the same file. The
        tracking URI (without any password) is noted beside it for ``tracking sync``."""
        spool = cls((root or default_spool_root()) / f"{socket.gethostname()}-{os.getpid()}")
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

    def append(self, run_id: str, op: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._note_uri()
        with open(self._path(run_id), "a") as fh:
            fh.write(json.dumps(op) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def replay(self, run_id: str, apply: Callable[[dict[str, Any]], None]) -> bool:
        """Deliver the run's spooled writes in order; True when none is left."""
        path = self._path(run_id)
        if not path.exists():
            return True
        ops = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for i, op in enumerate(ops):
            try:
                apply(op)
            except Exception as exc:
                remaining = path.with_suffix(".tmp")
                remaining.write_text("".join(json.dumps(o) + "\n" for o in ops[i:]))
                remaining.replace(path)
                log.debug("spool for run %s still blocked: %s", run_id, exc)
                return False
        path.unlink()
        return True
