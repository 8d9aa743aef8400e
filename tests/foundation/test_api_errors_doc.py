"""docs/api.md tells which status a body that cannot be parsed gets, and it is the one the
server answers."""

from __future__ import annotations

from pathlib import Path

import httpx

from server.app import create_app
from server.settings_file import parse_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def bullet(status: int) -> str:
    """The text of the ``- **status**`` item of the Errors list."""
    errors = DOC.read_text().split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    return errors.split(f"\n- **{status}**", 1)[1].split("\n- **", 1)[0]


async def test_bodies_that_cannot_be_parsed_get_the_documented_status(tmp_path: Path) -> None:
    app = create_app(parse_settings(f"storage: {{path: '{tmp_path / 'data'}'}}\n"))
    headers = {"content-type": "application/json"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        malformed = await client.post("/api/cameras", content=b'{"id": "x"', headers=headers)
        deep = await client.post("/api/cameras", content=b"[" * 5000 + b"]" * 5000, headers=headers)
    assert malformed.status_code == 422
    assert [e["type"] for e in malformed.json()["detail"]] == ["json_invalid"]
    assert "`json_invalid`" in bullet(422)
    assert deep.status_code == 400
    assert "nested too\n  deeply" in bullet(400)
    assert "not valid JSON" not in bullet(400)
