"""YAML files into validated models; every error one line naming the file and the key.

:func:`read_yaml_mapping` needs PyYAML only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from ..errors import ConfigError

if TYPE_CHECKING:  # pydantic is imported where a model is validated
    from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound="BaseModel")


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file (UTF-8, or UTF-16 with its byte-order mark, as
    YAML allows); :class:`ConfigError` naming the file otherwise."""
    try:
        data = yaml.safe_load(_yaml_text(path.read_bytes(), path)) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such configuration file") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a folder, not a configuration file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    except ValueError as exc:  # a date YAML reads as one but cannot be (2020-13-01)
        raise ConfigError(f"{path}: not valid YAML (an impossible date: {exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return dict(data)


def _yaml_text(raw: bytes, path: Path) -> str:
    """The text of a YAML file: UTF-16 where it starts with that byte-order mark, else UTF-8
    (with or without a mark)."""
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not {encoding.upper().replace('-SIG', '')} text (byte "
                          f"{exc.start}); save the recipe as UTF-8") from None


def validate(model: type[M], data: dict[str, Any], where: str) -> M:
    """``model`` from ``data``; :class:`ConfigError` ``"<where>: <key>: <problem>"`` for the
    first problem found (and how many more there are)."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {describe(exc)}") from None


def with_changes(model: M, changes: dict[str, Any], where: str = "command line") -> M:
    """``model`` with ``changes`` applied and validated again: a mapping value changes the
    keys of that section (``{"dask": {"workers": 2}}``), None values change nothing."""
    data = dict(model)
    for key, value in changes.items():
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None}
            if value:
                data[key] = dict(getattr(model, key)) | value
        elif value is not None:
            data[key] = value
    return model if data == dict(model) else validate(type(model), data, where)


_UNION_BRANCH = re.compile(r"(constrained-|literal\[|function-|tuple\[|list\[|dict\[|"
                           r"(int|str|float|bool|none)$)")


def describe(exc: ValidationError) -> str:
    """One line for a pydantic validation error: the first problem's key path, its message
    (a value that fits none of a union's forms: each form's message, joined by "or"), the
    value given, and how many more keys have problems."""
    by_key: dict[str, list[dict]] = {}
    for e in exc.errors(include_url=False):
        loc = [str(p) for p in e["loc"] if not _UNION_BRANCH.match(str(p))]
        by_key.setdefault(".".join(loc), []).append(e)
    key, errors = next(iter(by_key.items()))
    first = errors[0]
    msgs = []
    for e in errors:
        m = "unknown key" if e["type"] in ("extra_forbidden", "unexpected_keyword_argument") \
            else e["msg"].removeprefix("Value error, ")
        if m not in msgs:
            msgs.append(m)
    msg = ", or ".join(msgs)
    if first["type"] not in ("extra_forbidden", "unexpected_keyword_argument") and \
            "input" in first and not isinstance(first["input"], dict | list):
        msg += f" (got {first['input']!r})"
    more = f" (and {len(by_key) - 1} more problem(s))" if len(by_key) > 1 else ""
    return f"{key}: {msg}{more}" if key else f"{msg}{more}"
