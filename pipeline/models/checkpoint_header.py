"""Check what a checkpoint says about itself before anything acts on it.

A vidlake checkpoint's "arch", "config" and "label_names" (and the names of a
--labels file) come from a file the user may not have written: each is
checked here to be plain data of bounded size (`check_plain`), options an
architecture declares in range (`check_options`), or distinct printable label
names (`check_label_names`). Reading the files is pipeline.models.checkpoint's
job; nothing here touches storage or torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ConfigError

# Plain values: how deep lists and dicts nest, and how many values in all (a
# pickle can share one list many times over: a walk must not multiply it).
_MAX_DEPTH = 8
_MAX_VALUES = 200_000
_MAX_NAME_CHARS = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class CheckpointHeader:
    """What a vidlake checkpoint names: its architecture, options and labels."""

    arch: str
    config: dict[str, Any]
    label_names: tuple[str, ...] | None


@dataclass(frozen=True)
class Option:
    """One option a checkpoint's `config` may hold, as its reader uses it.

    `kind` is "int", "float", "bool", "str", "pair" (two ints) or "section" (a
    mapping of further `fields`); numbers must lie in [low, high]."""

    kind: str
    low: float = 0
    high: float = 0
    choices: tuple[str, ...] = ()
    required: bool = False
    fields: Mapping[str, Option] = field(default_factory=dict)


class PickledObject:
    """Stands for anything a pickle builds from a named class or function (the
    torch-free header reader builds these instead); `check_plain` refuses it
    by this name."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def __setitem__(self, _key: Any, _value: Any) -> None:
        pass

    def __setstate__(self, _state: Any) -> None:
        pass


def shown(value: Any, limit: int = 80) -> str:
    """`value` for a one-line message: repr, shortened; huge ints by size only."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"<a {value.bit_length()}-bit integer>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def checkpoint_header(obj: dict[Any, Any], where: str) -> CheckpointHeader:
    """The "arch", "config" and "label_names" of a checkpoint dict, refused
    (ConfigError naming `where` and the field) unless they are plain values."""
    arch = obj.get("arch")
    if not isinstance(arch, str) or not arch:
        raise ConfigError(f"{where}: arch must be a model name, got {shown(arch)}")
    check_plain(arch, "arch", where)
    config = obj.get("config")
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: config must be a mapping, got a {type(config).__name__}")
    check_plain(config, "config", where)
    labels = obj.get("label_names")
    names = check_label_names(labels, f"{where}: label_names") if labels else None
    return CheckpointHeader(arch, config, names)


def check_plain(value: Any, name: str, where: str) -> None:
    """ConfigError unless `value` is plain data: str, bool, None, finite floats,
    64-bit ints, and lists, tuples and str-keyed dicts of those, nested at most
    _MAX_DEPTH deep and _MAX_VALUES in all."""
    todo: list[tuple[Any, str, int]] = [(value, name, 0)]
    for _ in range(_MAX_VALUES + 1):
        if not todo:
            return
        item, path, depth = todo.pop()
        if depth > _MAX_DEPTH:
            raise ConfigError(f"{where}: {path} nests deeper than {_MAX_DEPTH} levels")
        todo.extend(_plain_children(item, path, depth, where))
    raise ConfigError(f"{where}: {name} holds more than {_MAX_VALUES} values")


def _plain_children(item: Any, path: str, depth: int, where: str) -> list[tuple[Any, str, int]]:
    """What `check_plain` must still visit inside `item`, once `item` itself is checked."""
    if item is None or isinstance(item, (str, bool)):
        return []
    if isinstance(item, int):
        if item.bit_length() > 63:
            raise ConfigError(f"{where}: {path} is {shown(item)}, beyond 64 bits")
        return []
    if isinstance(item, float):
        if not math.isfinite(item):
            raise ConfigError(f"{where}: {path} must be a finite number, got {item!r}")
        return []
    if isinstance(item, (list, tuple)):
        return [(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item)]
    if isinstance(item, dict):
        bad = next((k for k in item if not isinstance(k, str)), None)
        if bad is not None:
            raise ConfigError(f"{where}: {path} has a key {shown(bad)} that is not a string")
        return [(v, _member(path, k), depth + 1) for k, v in item.items()]
    kind = "pickled object" if isinstance(item, PickledObject) else type(item).__name__
    raise ConfigError(f"{where}: {path} holds a {kind}, not plain data")


def _member(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{shown(key, 40)}]"


def check_options(values: Any, options: Mapping[str, Option], name: str, where: str) -> None:
    """ConfigError naming `where` and the field unless `values` (plain data) holds
    only `options`, each of its kind and in its range, and every required one."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: {name} must be a mapping, got {shown(values)}")
    unknown = sorted(k for k in values if k not in options)
    if unknown:
        raise ConfigError(f"{where}: {_member(name, unknown[0])} is not an option vidlake "
                          f"reads (known: {', '.join(options) or 'none'})")
    missing = next((k for k, o in options.items() if o.required and k not in values), None)
    if missing is not None:
        raise ConfigError(f"{where}: {name}.{missing} is missing")
    for key, value in values.items():
        _check_option(value, options[key], f"{name}.{key}", where)


def _check_option(value: Any, option: Option, name: str, where: str) -> None:
    if option.kind == "section":
        check_options(value, option.fields, name, where)
    elif option.kind == "pair":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ConfigError(f"{where}: {name} must be two integers, got {shown(value)}")
        for index, item in enumerate(value):
            _check_number(item, Option("int", option.low, option.high), f"{name}[{index}]",
                          where)
    elif option.kind == "str":
        if not isinstance(value, str) or (option.choices and value not in option.choices):
            wanted = f"one of {', '.join(option.choices)}" if option.choices else "a string"
            raise ConfigError(f"{where}: {name} must be {wanted}, got {shown(value)}")
    elif option.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {name} must be true or false, got {shown(value)}")
    else:
        _check_number(value, option, name, where)


def _check_number(value: Any, option: Option, name: str, where: str) -> None:
    whole = option.kind == "int"
    kinds = (int,) if whole else (int, float)
    # The range test also refuses NaN and the infinities (every bound is finite).
    if isinstance(value, bool) or not isinstance(value, kinds) or \
            not option.low <= value <= option.high:
        what = "an integer" if whole else "a number"
        raise ConfigError(f"{where}: {name} must be {what} in [{option.low:g}, "
                          f"{option.high:g}], got {shown(value)}")


def parse_label_names(text: str, where: str) -> tuple[str, ...]:
    """The label names of a label file's text: a JSON list of strings, or one
    name per line; checked by `check_label_names`, ConfigError naming `where`."""
    if text.lstrip()[:1] in ("[", "{"):
        return check_label_names(_json_names(text, where), where)
    return check_label_names(_line_names(text, where), where)


def _json_names(text: str, where: str) -> Any:
    import json

    try:
        names = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ConfigError(f"{where} is not valid JSON ({shown(str(exc))})") from None
    if not isinstance(names, list):
        raise ConfigError(f"{where}: JSON label files hold a list of names, not a "
                          f"{type(names).__name__}")
    return names


def _line_names(text: str, where: str) -> list[str]:
    """One name per line; blank lines at the end are ignored, others refused (a
    skipped line would shift every later class index)."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    blank = next((i for i, line in enumerate(lines) if not line), None)
    if blank is not None:
        raise ConfigError(f"{where}: line {blank + 1} is empty; every line names a class")
    return lines


def check_label_names(names: Any, where: str) -> tuple[str, ...]:
    """`names` as a tuple if it is a non-empty list of distinct, non-blank
    strings of printable characters; ConfigError naming `where` otherwise."""
    if not isinstance(names, (list, tuple)) or not names:
        raise ConfigError(f"{where}: expected a non-empty list of label names, got "
                          f"{shown(names, 40)}")
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: name {index + 1} is {shown(name, 40)}, not a label "
                              "name")
        if len(name) > _MAX_NAME_CHARS or _CONTROL.search(name):
            raise ConfigError(f"{where}: name {index + 1} is not a label name (control "
                              f"characters or over {_MAX_NAME_CHARS} characters)")
        if name in seen:
            raise ConfigError(f"{where}: {shown(name, 40)} appears twice (names "
                              f"{seen[name] + 1} and {index + 1})")
        seen[name] = index
    return tuple(names)
