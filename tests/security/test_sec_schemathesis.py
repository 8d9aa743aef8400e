"""API fuzzing: schemathesis against the server's own ``/openapi.json``, with an admin token.

At least 500 generated requests (valid ones and, for every operation with parameters or a
body, invalid ones too) go to the real app under uvicorn. No response may be a 5xx, and
every response must match the status codes, content types, headers and bodies the schema
declares.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sec_harness import ADMIN, drain_stderr, listening_url, motionhub, poll, stop, write_config

MIN_CASES = 500
PER_OPERATION = 30
# A live MJPEG stream never ends: a generated request would read it forever. It is
# covered by the auth matrix and by the check at the end of the test.
ENDLESS = {"/api/cameras/{camera_id}/stream.mjpeg"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def fuzz_operation(
    op: Any,
    *,
    mode: GenerationMode,
    url: str,
    auth: dict[str, str],
    calls: Counter[str],
    statuses: Counter[int],
    session: requests.Session,
) -> None:
    """Run PER_OPERATION generated cases of ``op`` against ``url``, checking each response."""

    @settings(
        max_examples=PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        response = case.call(base_url=url, session=session, headers=auth, timeout=10)
        case.validate_response(response, checks=CHECKS, headers=auth)
        calls[op.label] += 1
        statuses[response.status_code] += 1

    fuzz()


@pytest.mark.slow
def test_fuzz_every_operation_of_the_openapi_schema(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    # A camera that exists but does not run: no decoding competes with the fuzzing.
    cams = [{"id": "cam1", "url": "rtsp://127.0.0.1:9/cam1", "enabled": False}]
    config = write_config(
        tmp_path / "motionhub.yml",
        {
            "server": {
                # Port 0: the server binds a free port itself and logs it, so no other
                # program can take it between choosing it and listening on it.
                "port": 0,
                "max_cameras": 6,
                "auth": {"tokens": [{"token": ADMIN, "role": "admin"}]},
            },
            "storage": {"path": str(tmp_path / "data")},
            # INFO: the server logs the port it listens on (and every request, read as it
            # comes so that the pipe never fills).
            "logging": {"level": "INFO"},
            "security": {"media_dir": str(media), "allowed_networks": ["127.0.0.0/8"]},
            "cameras": cams,
        },
    )
    auth = {"Authorization": f"Bearer {ADMIN}"}
    calls: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    # A server process of its own: the fuzzer's work does not share a GIL with it.
    proc = motionhub("serve", "--config", str(config))
    startup = ""
    rest: Callable[[], str] = lambda: ""  # noqa: E731
    try:
        url, startup = listening_url(proc)
        rest = drain_stderr(proc)
        url = url.rstrip("/")
        poll(f"{url}/readyz", lambda r: r.status_code == 200, proc=proc)
        session = requests.Session()
        raw = httpx.get(f"{url}/openapi.json").json()
        schema = schemathesis.openapi.from_dict(raw)
        operations = [op.ok() for op in schema.get_all_operations()]  # type: ignore[union-attr]
        assert len(operations) >= 12
        for op in operations:
            if op.path in ENDLESS:
                continue
            modes = [GenerationMode.POSITIVE]
            if op.body or any(True for _ in op.iter_parameters()):
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                fuzz_operation(
                    op,
                    mode=mode,
                    url=url,
                    auth=auth,
                    calls=calls,
                    statuses=statuses,
                    session=session,
                )
        stream = httpx.get(f"{url}/api/cameras/nosuch/stream.mjpeg", headers=auth, timeout=10)
        session.close()
    finally:
        stop(proc)
        err = startup + rest()
    assert "Traceback" not in err, err[-3000:]
    total = sum(calls.values())
    print(f"\nschemathesis: {total} cases over {len(calls)} operations; statuses {dict(statuses)}")
    assert total >= MIN_CASES
    assert not [s for s in statuses if s >= 500]
    assert stream.status_code == 404
    assert stream.json() == {"detail": "no camera with id 'nosuch'"} or "detail" in stream.json()
