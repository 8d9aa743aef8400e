"""Reading the configuration from a YAML file plus ``MOTIONHUB_*`` variables.

:func:`load_settings` turns any problem into a :class:`ConfigError` whose lines name the
file, the YAML line, the key path and the reason (or the ``MOTIONHUB_*`` variable a value
came from; never the value).

The file may also take values from the environment: ``${NAME}`` in any text value is
replaced by the variable ``NAME`` (``rtsp://admin:${CAM_PASSWORD}@10.0.0.5/stream``), or
by the content of the file ``NAME_FILE`` names (a Docker secret), so that passwords can stay
out of the file. A variable that is not set is a configuration error naming it;
``$${NAME}`` is the literal text ``${NAME}``.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_settings import EnvSettingsSource, SettingsError

from server.config import Settings
from server.validation_text import Loc, loc_text, plain_message

__all__ = ["ConfigError", "load_settings", "parse_settings"]


class ConfigError(Exception):
    """The configuration could not be used. ``lines`` holds one human-readable line each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _yaml_line(root: yaml.Node | None, loc: Loc) -> int | None:
    """The 1-based line of the deepest node along ``loc`` in the composed YAML tree."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _error_lines(
    exc: ValidationError, source: str, root: yaml.Node | None, data: dict[str, Any]
) -> list[str]:
    lines = []
    variables = _env_variables()
    env_data = EnvSettingsSource(Settings)() if variables else {}
    errors = exc.errors(include_url=False, include_input=False)
    locs = [e["loc"] for e in errors]
    for err in errors:
        # A bad item also makes its container "too short after validation": say it once.
        if err["type"] == "too_short" and any(
            other[: len(err["loc"])] == err["loc"] and len(other) > len(err["loc"])
            for other in locs
        ):
            continue
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function")))
        msg = plain_message(err["msg"])
        if err["type"] == "extra_forbidden":
            msg = "unknown key" + _suggestion(loc)
        variable = _env_origin(loc, env_data, variables)
        if variable is not None:
            lines.append(f"{source}: {loc_text(loc)} (from {variable}): {msg}")
            continue
        where = _where(source, root, loc) if loc and loc[0] in data else source
        lines.append(f"{where}: {loc_text(loc)}: {msg}")
    return lines


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class whose keys are valid at ``loc`` (list indexes and optional sections
    are stepped through), or ``None`` where ``loc`` leaves the model tree."""
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        found = _model_in(field.annotation)
        if found is None:
            return None
        model = found
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _suggestion(loc: Loc) -> str:
    """``; did you mean 'x'?`` for an unknown key close to a valid one at its place."""
    if not loc or not isinstance(loc[-1], str):
        return ""
    model = _model_at(loc[:-1])
    if model is None:
        return ""
    close = difflib.get_close_matches(loc[-1].lower(), list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _in_file_order(lines: list[str], source: str) -> list[str]:
    """``lines`` sorted by the file line they name (the model reports them in its own field
    order); lines without a file line (the whole file, a variable) keep their place first."""

    def line_of(text: str) -> int:
        head, _, rest = text.removeprefix(f"{source}:").partition(":")
        return int(head) if text.startswith(f"{source}:") and head.isdigit() and rest else 0

    return sorted(lines, key=line_of)


_ENV_PREFIX: str = (Settings.model_config.get("env_prefix") or "").lower()
_ENV_DELIMITER: str = Settings.model_config.get("env_nested_delimiter") or "__"


def _env_variables() -> dict[str, str]:
    """The set ``MOTIONHUB_*`` variables: lower-cased name (as the settings source sees it)
    to the name as written."""
    return {k.lower(): k for k in os.environ if k.lower().startswith(_ENV_PREFIX)}


def _env_origin(loc: Loc, env_data: Mapping[str, Any], variables: Mapping[str, str]) -> str | None:
    """The ``MOTIONHUB_*`` variable the value at ``loc`` came from, if it came from one."""
    keys: list[str] = []
    for part in loc:
        if not isinstance(part, str):
            break
        keys.append(part)
    prefix, delimiter = _ENV_PREFIX, _ENV_DELIMITER
    # How far ``loc`` reaches into what the environment gave (the file's values are merged
    # in under it, so a section named by a variable may still hold keys from the file).
    depth = 0
    node: Any = env_data
    for part in loc:
        inside = (
            part in node
            if isinstance(node, Mapping)
            else isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if not inside:
            break
        node = node[part]
        depth += 1
    for n in range(len(keys), 0, -1):
        name = prefix + delimiter.join(keys[:n]).lower()
        if name in variables and (depth == len(loc) or depth > n):
            return variables[name]
    return None


def _unknown_overrides() -> list[str]:
    """One line for each ``MOTIONHUB_A__B`` variable whose section ``A`` does not exist: the
    settings source would skip it without a word, and the override would silently not apply.
    (Variables without ``__`` are left alone: other ``MOTIONHUB_*`` variables exist.)"""
    prefix, delimiter = _ENV_PREFIX, _ENV_DELIMITER
    lines = []
    for lower, name in sorted(_env_variables().items()):
        section = lower.removeprefix(prefix).partition(delimiter)[0]
        if delimiter not in lower or section in Settings.model_fields:
            continue
        line = f"{name}: no such section {section!r}"
        close = difflib.get_close_matches(section, list(Settings.model_fields), n=1, cutoff=0.6)
        if close:
            line += f"; did you mean {prefix.upper()}{close[0].upper()}{delimiter}...?"
        lines.append(line)
    return lines


def _env_json_errors() -> list[str]:
    """One line for each ``MOTIONHUB_*`` variable whose value should be JSON (a list or a
    section) and is not; its value is never shown (it may be a secret)."""
    lines = []
    for lower, name in sorted(_env_variables().items()):
        only = EnvSettingsSource(Settings)
        only.env_vars = {lower: os.environ[name]}
        try:
            only()
        except SettingsError:
            lines.append(f"{name}: not valid JSON (lists and sections are written in JSON)")
    return lines or ["a MOTIONHUB_* variable could not be parsed as JSON"]


def _where(source: str, root: yaml.Node | None, loc: Loc) -> str:
    line = _yaml_line(root, loc)
    return source if line is None else f"{source}:{line}"


def _duplicate_keys(source: str, root: yaml.Node | None) -> list[str]:
    """One line for each key repeated in a mapping of the composed YAML tree (YAML itself
    lets the last one win, silently dropping the first)."""
    lines: list[str] = []
    seen: set[int] = set()

    def walk(node: yaml.Node, loc: Loc) -> None:
        if id(node) in seen:  # an alias: already walked (and maybe a cycle)
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    if (key.tag, key.value) in first:
                        where = "" if not loc else f"{loc_text(loc)}: "
                        lines.append(
                            f"{source}:{line}: {where}duplicate key {key.value!r}"
                            f" (first at line {first[key.tag, key.value]})"
                        )
                    else:
                        first[key.tag, key.value] = line
                    walk(value, (*loc, key.value))
                else:
                    walk(value, loc)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*loc, i))

    if root is not None:
        walk(root, ())
    return lines


_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LITERAL = "write $${ for the literal text ${"
_NOT_A_NAME = (
    "a ${...} that is not a variable name (letters, digits and _, not starting with a digit);"
    f" {_LITERAL}"
)


def _variable(name: str, environ: Mapping[str, str]) -> str:
    """The value of ``${name}``: the variable ``name``, else the content of the file that
    ``name_FILE`` names (a Docker or Kubernetes secret), without its final line break.
    Raises ``ValueError`` saying what is missing (never a value)."""
    if name in environ:
        return environ[name]
    path = environ.get(f"{name}_FILE")
    if path is None:
        raise ValueError(f"environment variable {name} is not set ({_LITERAL})")
    try:
        return Path(path).read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
    except OSError as exc:
        raise ValueError(f"{name}_FILE: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{name}_FILE: {path} is not UTF-8 text") from None


def _expand_variables(data: Any, environ: Mapping[str, str]) -> tuple[Any, list[tuple[Loc, str]]]:
    """``data`` (parsed YAML) with each ``${NAME}`` in its text values replaced (see
    :func:`_variable`; keys are left alone), and each problem met with where it was."""
    problems: list[tuple[Loc, str]] = []
    # YAML aliases share one object: expand it once (and an alias of itself stays a cycle).
    done: dict[int, Any] = {}

    def reference(match: re.Match[str], loc: Loc) -> str:
        escaped, name = match.groups()
        if escaped:
            return match.group(0)[1:]
        if not _NAME.fullmatch(name):
            # What is inside may be part of a password written in the file: not shown.
            problems.append((loc, _NOT_A_NAME))
            return match.group(0)
        try:
            return _variable(name, environ)
        except ValueError as exc:
            problems.append((loc, str(exc)))
            return match.group(0)

    def expand(value: Any, loc: Loc) -> Any:
        if isinstance(value, str):
            return _REFERENCE.sub(lambda m: reference(m, loc), value)
        if id(value) in done:
            return done[id(value)]
        if isinstance(value, dict):
            out: dict[Any, Any] = done.setdefault(id(value), {})
            out.update({k: expand(v, (*loc, k)) for k, v in value.items()})
            return out
        if isinstance(value, list):
            items: list[Any] = done.setdefault(id(value), [])
            items.extend(expand(v, (*loc, i)) for i, v in enumerate(value))
            return items
        return value

    return expand(data, ()), problems


_PATH_KEYS: tuple[Loc, ...] = (
    ("storage", "path"),
    ("security", "media_dir"),
    ("mqtt", "tls", "ca"),
    ("mqtt", "tls", "cert"),
    ("mqtt", "tls", "key"),
)
"""The keys that hold file system paths (camera URLs must be absolute already)."""


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make each relative path written in the file relative to ``base`` (the file's folder),
    so that the file means the same whatever directory the server is started from."""
    for loc in _PATH_KEYS:
        node: Any = data
        for part in loc[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(loc[-1]), str):
            value = Path(node[loc[-1]]).expanduser()
            node[loc[-1]] = str(value) if value.is_absolute() else os.path.normpath(base / value)


def parse_settings(
    text: str,
    source: str = "<config>",
    environ: Mapping[str, str] | None = None,
    base: Path | None = None,
) -> Settings:
    """Parse YAML ``text`` into :class:`Settings`, with ``${NAME}`` in its values taken from
    ``environ`` (default: the process's environment), then the ``MOTIONHUB_*`` overrides.
    With ``base``, relative paths in ``text`` are taken from that folder."""
    # One parse: the node tree gives the line numbers, the data is built from the same tree.
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # reading starts here: it may refuse a character
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{where}: invalid YAML: {problem}"]) from None
    finally:
        if loader is not None:
            loader.dispose()
    duplicates = _duplicate_keys(source, root)
    if duplicates:
        raise ConfigError(duplicates)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping of sections"])
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        raise ConfigError([f"{source}: section names must be text, not {odd[0]!r}"])
    data, missing = _expand_variables(data, os.environ if environ is None else environ)
    if missing:
        raise ConfigError(
            [f"{_where(source, root, loc)}: {loc_text(loc)}: {problem}" for loc, problem in missing]
        )
    if base is not None:
        _resolve_paths(data, base)
    unknown = _unknown_overrides()
    if unknown:
        raise ConfigError(unknown)
    try:
        return Settings(**data)
    except SettingsError:
        raise ConfigError(_env_json_errors()) from None
    except ValidationError as exc:
        raise ConfigError(_in_file_order(_error_lines(exc, source, root, data), source)) from None


def load_settings(path: Path | None) -> Settings:
    """Load the config file at ``path`` (or defaults plus environment when ``None``)."""
    if path is None:
        return parse_settings("", "<defaults>")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: config file is not UTF-8 text"]) from None
    return parse_settings(text, str(path), base=Path(os.path.abspath(path)).parent)
