"""The one configuration loader, for the engine, benchmark and training settings alike.

Settings are dataclasses: their defaults are the only defaults. Layers of plain mappings are put
over them, each named by where it came from, with one precedence everywhere:

    dataclass defaults < the settings a weights file recommends < a config file < the command line

Every value is checked where it is read, against the field's type (int, float, bool, str,
Optional, Tuple, List, nested dataclasses) and its `metadata` (`min`, `max`, `gt`, `lt`,
`choices`, `min_len`, and `check`: a function of the converted value returning what was expected, or None), and a bad
value is reported in one line that names its layer (`configs/davis.yaml: memory must be ...`,
`--set memory=abc: ...`). YAML is read safely and with YAML 1.2's booleans (only true/false): a
`no` or `off` stays the string it looks like, and is refused where a bool is expected; and with YAML
1.2's floats: `1e-3` is a number (YAML 1.1 reads it as text).

Torch-free: CLIs and the evaluation tools read settings without importing the model.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import operator
import re
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

import yaml

from .errors import ConfigError, is_integer

T = TypeVar("T")
Layer = Tuple[Mapping[str, Any], str]  # (settings, where they came from)

#: packaged configs, resolved by name (`--config davis2017`): the repository's `configs/` folder,
#: installed as the package `seggpt_vos_configs`
CONFIG_PACKAGE = "seggpt_vos_configs"


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false (any case), never yes/no/on/off; a key given
    twice in one mapping is an error (YAML 1.2 requires unique keys; PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is given twice (line {key_node.start_mark.line + 1})",
                        key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Yaml12Loader.yaml_implicit_resolvers = {
    k: [(tag, regexp) for tag, regexp in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))
# YAML 1.2 floats that YAML 1.1 leaves as text: an exponent without a dot or without a sign (`1e-3`,
# `2E5`, `1.5e3`); the 1.1 resolver (which needs a dot and a signed exponent) still reads the others
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+0123456789."))


#: the largest integer any setting takes (counts, sizes, steps); larger is a typo, never a request
MAX_INT_SETTING = 2 ** 31 - 1

def parse_value(text: str) -> Any:
    """A command-line value as YAML 1.2 reads it: numbers, true/false, null, [lists], else the text."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)
    except yaml.YAMLError:
        return text


# ---------------------------------------------------------------------------- reading layers
def config_path(spec: Union[str, Path]) -> Path:
    """A config file: an existing path, or the name of a packaged config (`benchmark_davis`, `train_small`)."""
    path = Path(spec)
    if path.is_dir():
        raise ConfigError(f"{spec}: is a folder, not a config file")
    if path.is_file():
        return path
    name = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
    if path.parent == Path(".") or path.parent == Path("configs"):  # a bare name, or `configs/x.yaml` from elsewhere
        packaged = packaged_config(name)
        if packaged is not None:
            return packaged
    raise ConfigError(f"{spec}: config file not found (packaged configs: {', '.join(packaged_names()) or 'none'})")


def _packaged_files() -> List[Any]:
    """The files of the packaged configs ([] where the package is not installed)."""
    try:
        return list(resources.files(CONFIG_PACKAGE).iterdir())
    except ModuleNotFoundError:
        return []


def packaged_config(name: str) -> Optional[Path]:
    return next((Path(str(f)) for f in _packaged_files() if f.name == name and f.is_file()), None)


def packaged_names() -> List[str]:
    return sorted(f.name[:-5] for f in _packaged_files() if f.name.endswith(".yaml"))


def read_yaml(spec: Union[str, Path]) -> Dict[str, Any]:
    """A config file (path or packaged name) as a mapping."""
    try:
        data = yaml.load(config_path(spec).read_text(encoding="utf-8"), Loader=_Yaml12Loader)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{spec}: cannot read the config file ({e.__class__.__name__})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{spec}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{spec}: expected a mapping of settings at the top level, got {type(data).__name__}")
    return data


def parse_assignments(items: Sequence[str], option: str = "--set") -> List[Layer]:
    """`key=value` / `section.key=value` overrides, one layer each (so an error names the very item)."""
    layers: List[Layer] = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
            raise ConfigError(f"{option} {item}: expected key=value (e.g. memory=4, engine.memory=4)")
        layers.append((_nested(key, parse_value(text)), f"{option} {item}"))
    return layers


def _nested(key: str, value: Any) -> Dict[str, Any]:
    """`{"engine": {"memory": 4}}` for ``("engine.memory", 4)``: a dotted key as the mapping a file would hold."""
    head, _, rest = key.partition(".")
    return {head: _nested(rest, value) if rest else value}


def option_layers(args: Any, options: Mapping[str, str]) -> List[Layer]:
    """Command-line options that were given (not None), as layers: {attribute: "key.path"}."""
    return [(_nested(key, getattr(args, attr)), "--" + attr.replace("_", "-"))
            for attr, key in options.items() if getattr(args, attr, None) is not None]


# ---------------------------------------------------------------------------- building settings
def build(cls: Type[T], layers: Sequence[Layer] = ()) -> T:
    """An instance of the settings dataclass `cls`: its defaults with `layers` put over them in order."""
    merged: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
    for mapping, source in layers:
        if mapping is None:
            continue
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{source}: expected a mapping of settings, got {type(mapping).__name__}")
        _merge(merged, mapping, sources, source, "")
    return _convert_dataclass(cls, merged, sources, "")


def as_dict(settings: Any) -> Dict[str, Any]:
    """Settings as plain data (tuples as lists), for YAML/JSON reports."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(settings))


def _merge(into: Dict[str, Any], mapping: Mapping[str, Any], sources: Dict[str, str], source: str,
           prefix: str) -> None:
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise ConfigError(f"{source}: setting names are text, got {key!r}")
        path = prefix + key
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value, sources, source, path + ".")
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value
            sources[path] = source
            if isinstance(value, Mapping):  # a mapping replaces the one before it: its keys' sources are its own
                for sub in [p for p in sources if p.startswith(path + ".")]:
                    if sub[len(path) + 1:].split(".")[0] not in value:
                        del sources[sub]
                sources.update({f"{path}.{sub_key}": source for sub_key in value})


def _where(sources: Dict[str, str], path: str) -> str:
    """The layer that set `path`: its own entry, else the nearest ancestor that set it (a mapping above it,
    or the list an item came in: `curriculum[0].jitter` came with `curriculum`), else one of its parts."""
    at = path
    while at:
        if at in sources:
            return sources[at]
        parent = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", at)
        if parent == at:
            break
        at = parent
    return next((s for p, s in sources.items() if p.startswith(path + ".")), "settings")


def _convert_dataclass(cls: Type[T], values: Mapping[str, Any], sources: Dict[str, str], prefix: str) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        path = prefix + unknown[0]
        raise ConfigError(f"{_where(sources, path)}: unknown setting {path!r} (known: {', '.join(sorted(fields))})")
    missing = [f.name for f in fields.values() if f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        path = prefix + missing[0]
        raise ConfigError(f"{_where(sources, prefix.rstrip('.') or path)}: {path} is required")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _convert(hints[name], value, fields[name].metadata, sources, prefix + name)
              for name, value in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError as e:  # a check across fields, in __post_init__
        where = ", ".join(dict.fromkeys(_where(sources, prefix + k) for k in kwargs)) or "settings"
        raise ConfigError(f"{where}: {e}") from None


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Union:
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None)) + " or null"
    if origin in (tuple, list):
        return "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "text"}.get(tp, str(tp))


def _convert(tp: Any, value: Any, meta: Mapping[str, Any], sources: Dict[str, str], path: str) -> Any:
    where = _where(sources, path)

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {path} must be {expected}, got {value!r}")

    origin = typing.get_origin(tp)
    if origin is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        if len(args) == 1:  # Optional[X]: X's own message
            return _convert(args[0], value, meta, sources, path)
        for arg in args:
            with contextlib.suppress(ConfigError):
                return _convert(arg, value, meta, sources, path)
        raise bad(_describe(tp))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value  # an instance validated itself when it was made
        if not isinstance(value, Mapping):
            raise bad("a mapping of settings")
        return _convert_dataclass(tp, value, sources, path + ".")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise bad(_describe(tp))
        args = typing.get_args(tp)
        fixed = origin is tuple and args and args[-1] is not Ellipsis  # Tuple[int, int]: one type per item
        if fixed and len(value) != len(args):
            raise bad(f"a list of {len(args)} values")
        types = args if fixed else [args[0] if args else Any] * len(value)
        items = [_convert(a, v, {}, sources, f"{path}[{i}]") for i, (a, v) in enumerate(zip(types, value))]
        out: Any = tuple(items) if origin is tuple else items
        if "min_len" in meta and len(out) < meta["min_len"]:
            raise bad(f"a list of at least {meta['min_len']} values")
        for item in out:
            _check_range(item, meta, bad)
        _check_custom(out, meta, bad)
        return out
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise bad("a mapping")
        return dict(value)
    if tp is Any:
        _check_custom(value, meta, bad)
        return value
    if tp in (bool, str):
        if not isinstance(value, tp):
            raise bad(_describe(tp))  # "true or false", "text"
    elif tp is int:
        if not is_integer(value):
            raise bad("an integer")
        value = int(value)
        if abs(value) > MAX_INT_SETTING:  # beyond any count we use, and past what C sizes hold (OverflowError)
            raise bad(f"an integer of at most {MAX_INT_SETTING}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        if not math.isfinite(value):
            raise bad("a finite number")
        value = float(value)
    if "choices" in meta and value not in meta["choices"]:
        raise bad("one of " + ", ".join(repr(c) for c in meta["choices"]))
    _check_range(value, meta, bad)
    _check_custom(value, meta, bad)
    return value


#: the range checks of `setting`: (key, what a value out of range is, what the message says was expected)
_RANGES = (("min", operator.lt, ">="), ("max", operator.gt, "<="), ("gt", operator.le, ">"), ("lt", operator.ge, "<"))


def _check_range(value: Any, meta: Mapping[str, Any], bad) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    for key, out_of_range, expected in _RANGES:
        if key in meta and out_of_range(value, meta[key]):
            raise bad(f"{expected} {meta[key]}")


def _check_custom(value: Any, meta: Mapping[str, Any], bad) -> None:
    """A field's own check (`setting(check=fn)`): fn(value) returns what was expected, or None if fine."""
    expected = meta["check"](value) if meta.get("check") is not None else None
    if expected:
        raise bad(expected)


def setting(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, **checks: Any) -> Any:
    """A dataclass field with checks the loader applies (`min`, `max`, `gt`, `lt`, `choices`, `min_len`, `check`).

    `check`: a function of the converted value (a tuple for a Tuple field) that returns what was
    expected when the value is bad (`"two numbers with low <= high"`), else None; the loader reports
    it as every other check, naming the value's source.
    """
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=checks)
    return dataclasses.field(default=default, metadata=checks)


def validate(settings: Any) -> None:
    """Check (and normalise: lists to tuples) every field of a settings instance, e.g. one made in code.

    Settings dataclasses call this from `__post_init__`, so `EngineConfig(memory=-1)` fails at once
    with the same message a config file would get.
    """
    hints = typing.get_type_hints(type(settings))
    name = type(settings).__name__
    for f in dataclasses.fields(settings):
        if f.init:
            value = _convert(hints[f.name], getattr(settings, f.name), f.metadata, {f.name: name}, f.name)
            object.__setattr__(settings, f.name, value)


__all__ = ["ConfigError", "build", "validate", "as_dict", "read_yaml", "parse_assignments", "parse_value", "option_layers",
           "config_path", "packaged_names", "setting", "Layer", "CONFIG_PACKAGE"]
