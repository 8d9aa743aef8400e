"""``motionhub bench``: performance suites.

Each suite is a function ``run(ctx: BenchContext) -> SuiteResult``, registered by name in
:data:`SUITES` as ``"module:function"`` so that the command line imports only what it runs. To add
a suite (decode, latency, fanout, memory, scale, ...), write the module and add one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

__all__ = ["SUITES", "BenchContext", "Suite", "SuiteResult", "load_suite"]


@dataclass(frozen=True)
class BenchContext:
    """What every suite gets: where the test footage is, whether to keep it short, and a
    progress callback (one line of text, shown on stderr)."""

    datasets: Path
    quick: bool = False
    progress: Callable[[str], None] = field(default=lambda _msg: None)
    duration: float | None = None
    """Seconds for a suite's long phase (the memory soak), overriding its default."""


@dataclass
class SuiteResult:
    """A suite's outcome: JSON-friendly ``data`` and a markdown ``summary`` for people."""

    name: str
    data: dict[str, Any]
    summary: str


Suite = Callable[[BenchContext], SuiteResult]

SUITES: dict[str, str] = {
    "detector": "server.bench.detector:run",
    "decode": "server.bench.decode:run",
    "latency": "server.bench.latency:run",
    "fanout": "server.bench.fanout:run",
    "memory": "server.bench.memory:run",
    "scale": "server.bench.scale:run",
}
"""Suite name -> ``"module:function"``."""


def load_suite(name: str) -> Suite:
    """Import and return the suite registered as ``name`` (KeyError if unknown)."""
    module_name, _, func = SUITES[name].partition(":")
    module = importlib.import_module(module_name)
    return cast(Suite, getattr(module, func))
