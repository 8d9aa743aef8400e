"""docs/configuration.md names every configuration key with its real default, so a new key
cannot go undocumented and the tables cannot drift from the model (they once showed the
detector's old defaults)."""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from server.config import CameraSettings, Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
ROW = re.compile(r"^\| `([^`]+)` \| [^|]* \| ([^|]*) \|", re.MULTILINE)


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


@pytest.fixture(scope="module")
def doc() -> str:
    """docs/configuration.md, read once for all the tests here."""
    return DOC.read_text()


def test_every_key_is_documented(doc: str) -> None:
    found = sections(Settings, "") + sections(CameraSettings, "cameras[]")
    missing = []
    for path, model in found:
        if not path:
            continue
        heading = f"### `{path}`\n"
        if heading not in doc:
            missing.append(path)
            continue
        body = doc.split(heading, 1)[1].split("\n### ", 1)[0]
        missing += [f"{path}.{k}" for k in model.model_fields if f"| `{k}` |" not in body]
    assert not missing, f"document these in docs/configuration.md: {missing}"


def shown(value: Any) -> str:
    """A default as the tables write it."""
    if isinstance(value, BaseModel):
        return "(section)"
    if value is None or isinstance(value, bool):
        text = json.dumps(value)
    elif isinstance(value, (Path, list, dict)):
        text = json.dumps(str(value) if isinstance(value, Path) else value)
    elif isinstance(value, str):
        text = value or '""'
    else:
        text = repr(value)
    return f"`{text}`"


def documented_defaults(text: str) -> dict[str, str]:
    out = {}
    for block in text.split("\n### `")[1:]:
        path = block.split("`", 1)[0]
        for key, default in ROW.findall(block):
            out[f"{path}.{key}"] = default.strip()
    return out


def model_defaults() -> dict[str, str]:
    out = {}
    for path, model in sections(Settings, "") + sections(CameraSettings, "cameras[]"):
        if not path:
            continue
        for key, field in model.model_fields.items():
            if field.is_required():
                value = "**required**"
            elif field.default is PydanticUndefined and field.default_factory is not None:
                value = shown(field.default_factory())  # type: ignore[call-arg]
            else:
                value = shown(field.default)
            out[f"{path}.{key}"] = value
    return out


@pytest.fixture(scope="module")
def documented(doc: str) -> dict[str, str]:
    """The default each table row shows, by dotted key, parsed once."""
    return documented_defaults(doc)


MODEL_DEFAULTS = model_defaults()


@pytest.mark.parametrize("key", sorted(MODEL_DEFAULTS))
def test_every_documented_default_is_the_models(key: str, documented: dict[str, str]) -> None:
    assert documented.get(key) == MODEL_DEFAULTS[key]
