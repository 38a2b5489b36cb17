"""Frozen dataclass configs from YAML: strict keys, checked types, dotted command-line overrides.

Every YAML the project reads or writes goes through this module (:func:`load_config`,
:func:`read_yaml`, :func:`write_yaml`), so all configs behave alike: ``yaml.safe_load`` only; an
unknown key, a missing required key or a value of the wrong type is a
:class:`~emergence.errors.UserError` naming the dotted key and the file (a typo silently ignored would
cost a day of accelerator time); and ``section.key=value`` overrides from the command line are applied
*before* validation, so they are checked exactly like the file. Override values are parsed as YAML
(``3e-4`` → float, ``[1, 2]`` → list).

Two shorthands keep the files short. A section given in the file is read *over the field's default*:
when a config's default for ``finetune`` sets ``save_every: 1000``, a file's ``finetune: {epochs: 2}``
keeps it. And a bare string where an entry is expected names the entry's first field
(``checkpoints: [path]`` for ``checkpoints: [{model: path}]``).
"""

from __future__ import annotations

import copy
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
    out = copy.deepcopy(dict(raw))
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


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s keys on top, section by section (nested mappings merge too)."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if both else copy.deepcopy(value)
    return out


def updated(obj: T, over: Mapping[str, Any], *, source: str, prefix: str = "") -> T:
    """Config ``obj`` with the (partial, nested) keys of ``over`` set, checked like a file."""
    return from_dict(type(obj), merge(to_dict(obj), over), source=source, prefix=prefix)


def from_dict(cls: type[T], raw: Any, *, source: str, prefix: str = "") -> T:
    """Build dataclass ``cls`` from plain data, checking keys and types; errors name key and source."""
    where = prefix or "the top level"
    if isinstance(raw, str) and _required(first := dataclasses.fields(cls)[0]):  # type: ignore[arg-type]
        raw = {first.name: raw}  # the shorthand for an entry: its first (required) field
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
            if _required(f):
                raise UserError(f"{source}: missing required key '{key}'")
            continue
        value = raw[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if isinstance(value, Mapping) and dataclasses.is_dataclass(default):
            value = merge(to_dict(default), value)  # a section is read over the field's default
        values[name] = convert(hints[name], value, source=source, key=key)
    try:
        return cls(**values)
    except UserError as err:
        raise UserError(f"{source}: {prefix + ': ' if prefix else ''}{err}") from None


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


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
        if isinstance(value, Mapping) and args and typing.get_origin(args[0]) is tuple:
            value = list(value.items())  # a mapping for a list of (key, value) pairs
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{source}: {key}: expected a list, got {_show(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:  # a fixed-length tuple: one type per item
            if len(value) != len(args):
                raise UserError(f"{source}: {key}: expected {len(args)} items, got {len(value)}")
            types_ = args
        else:
            types_ = (args[0] if args else Any,) * len(value)
        items = [
            convert(t, v, source=source, key=f"{key}[{i}]")
            for i, (t, v) in enumerate(zip(types_, value, strict=True))
        ]
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


def load_config(cls: type[T], path: str | Path | None, overrides: Sequence[str] = ()) -> T:
    """Read YAML ``path`` (None: no file, defaults only), apply dotted ``overrides``, build a checked ``cls``."""
    raw = apply_overrides(read_yaml(path) if path is not None else {}, overrides)
    return from_dict(cls, raw, source=str(path) if path is not None else "command line")


def write_yaml(path: str | Path, data: Any, header: str = "") -> Path:
    """Plain ``data`` as YAML (keys in order), after ``header`` comment lines, written atomically."""
    from emergence.fileio import atomic_write

    def write(handle) -> None:
        handle.write(header)
        yaml.safe_dump(data, handle, sort_keys=False)

    return atomic_write(Path(path), write)
