"""The command line: ``tornadostudy …``. Thin: it parses, calls the library, and is the only place that turns a
``TornadoStudyError`` into a one-line message and an exit code."""

from tornadostudy.cli.main import main

__all__ = ["main"]
