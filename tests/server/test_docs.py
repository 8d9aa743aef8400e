"""docs/configuration.md names every configuration key, so a new key cannot go undocumented."""

from __future__ import annotations

import types
import typing
from pathlib import Path

from pydantic import BaseModel

from server.config import CameraSettings, Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def sections(model: type[BaseModel], prefix: str) -> list[tuple[str, type[BaseModel]]]:
    """``(path, model)`` of every section: nested models, optional ones, and list items."""
    out = [(prefix, model)]
    for name, field in model.model_fields.items():
        ann = field.annotation
        args = typing.get_args(ann) if isinstance(ann, types.UnionType) else (ann,)
        for cls in args:
            if isinstance(cls, type) and issubclass(cls, BaseModel):
                out += sections(cls, f"{prefix}.{name}" if prefix else name)
    return out


def test_every_key_is_documented() -> None:
    text = DOC.read_text()
    found = sections(Settings, "") + sections(CameraSettings, "cameras[]")
    missing = []
    for path, model in found:
        if not path:
            continue
        heading = f"### `{path}`\n"
        if heading not in text:
            missing.append(path)
            continue
        body = text.split(heading, 1)[1].split("\n### ", 1)[0]
        missing += [f"{path}.{k}" for k in model.model_fields if f"| `{k}` |" not in body]
    assert not missing, f"document these in docs/configuration.md: {missing}"
