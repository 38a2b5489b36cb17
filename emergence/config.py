"""Frozen dataclass configs from YAML: strict keys, checked types, dotted command-line overrides.

Every config in the project (sweeps, and any other YAML a command reads) goes through
:func:`load_config`, so they all behave alike: ``yaml.safe_load`` only; an unknown key, a missing
required key or a value of the wrong type is a :class:`~emergence.errors.UserError` naming the dotted
key and the file (a typo silently ignored would cost a day of accelerator time); and
``section.key=value`` overrides from the command line are applied *before* validation, so they are
checked exactly like the file. Override values are parsed as YAML (``3e-4`` → float, ``[1, 2]`` → list).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from emergence.errors import UserError

T = TypeVar("T")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping at the top of a YAML file; a missing file or bad YAML is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}: not valid YAML{where} ({getattr(err, 'problem', None) or err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of keys at the top, got {type(data).__name__}")
    return data


def apply_overrides(
    raw: Mapping[str, Any], overrides: Sequence[str], source: str = "command line"
) -> dict[str, Any]:
    """A copy of ``raw`` with each ``dotted.key=value`` set (values parsed as YAML)."""
    out = _deep_copy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise UserError(f"override {item!r} ({source}): expected dotted.key=value")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node = out
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise UserError(f"override {item!r}: {'.'.join(parts[: depth + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def from_dict(cls: type[T], raw: Any, *, source: str, prefix: str = "") -> T:
    """Build dataclass ``cls`` from plain data, checking keys and types; errors name key and source."""
    where = prefix or "the top level"
    if not isinstance(raw, Mapping):
        raise UserError(f"{source}: {where}: expected a mapping, got {_show(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in raw:
        if key not in fields:
            known = ", ".join(fields)
            raise UserError(f"{source}: unknown key '{_join(prefix, str(key))}' (known here: {known})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        key = _join(prefix, name)
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UserError(f"{source}: missing required key '{key}'")
            continue
        values[name] = convert(hints[name], raw[name], source=source, key=key)
    try:
        return cls(**values)
    except UserError as err:
        raise UserError(f"{source}: {err}") from None


def convert(tp: Any, value: Any, *, source: str, key: str) -> Any:
    """``value`` as type ``tp`` (dataclass, int, float, str, bool, Optional, tuple[...], list[...], dict)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return convert(option, value, source=source, key=key)
            except UserError as err:
                errors.append(err)
        raise errors[0]
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, source=source, prefix=key)
    if tp is Any:
        return value
    if origin in (tuple, list, Sequence):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{source}: {key}: expected a list, got {_show(value)}")
        item_tp = args[0] if args else Any
        items = [convert(item_tp, v, source=source, key=f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is not list else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise UserError(f"{source}: {key}: expected a mapping, got {_show(value)}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{source}: {key}: expected true or false, got {_show(value)}")
        return value
    if tp in (int, float) and isinstance(value, str):
        value = _yaml11_number(value)  # PyYAML reads 3e-4 and 1e6 (no dot, no sign) as strings
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise UserError(f"{source}: {key}: expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{source}: {key}: expected a number, got {_show(value)}")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list, bool)) or value is None:
            raise UserError(f"{source}: {key}: expected a string, got {_show(value)}")
        return str(value)
    # a type the dataclass uses but this loader does not know: a bug in the code, not user input
    raise TypeError(f"config type {tp!r} for {key} is not supported")


def _yaml11_number(text: str) -> Any:
    """``text`` as a number when it is written like one (``3e-4``, ``1e6``), else unchanged."""
    try:
        number = float(text)
    except ValueError:
        return text
    if number.is_integer() and all(c not in text.lower() for c in ".ena"):
        return int(number)
    return number


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return type(value).__name__
    return repr(value)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def to_dict(obj: Any) -> Any:
    """Plain JSON-able data (tuples become lists) from a config dataclass."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def load_config(cls: type[T], path: str | Path, overrides: Sequence[str] = ()) -> T:
    """Read YAML ``path``, apply dotted ``overrides``, and build a validated ``cls``."""
    raw = apply_overrides(read_yaml(path), overrides)
    return from_dict(cls, raw, source=str(path))
