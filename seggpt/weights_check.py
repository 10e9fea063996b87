"""Checks of a weights file before a model is built from it (issue 13: every value checked where it is read).

`seggpt.weights.load_model` builds the model from the config a file stores and only then compares the
tensors: a metadata config with ``depth: 999`` built a 999-block model for 77 s before failing, a config
that is not JSON or names an unknown key ended in a traceback, integer or NaN weights loaded and ran.
Here every check that needs no tensor reads only the file's header:

* `packaged_weights(name)`: a packaged name ("small") is the packaged file, whatever the current folder
  holds (a local file or folder named ``small`` is passed as ``./small``);
* `read_safetensors_header(path)`: the header of a safetensors file, torch-free (an 8-byte little-endian
  length, then that many bytes of JSON), each entry checked against the file's size;
* `check_weights_file(path)`: our metadata config (JSON, known keys, types and ranges) against the tensor
  shapes in the header, integer tensors, a transformers ``config.json`` beside the file;
* `check_config_json(path)`: a transformers ``config.json`` (an object; sizes positive and sane);
* `check_state(state, source)` (torch): floating, finite tensors, for any state dict once it is read;
* `code_globals(path)`: the Python objects (not tensors) a pickled checkpoint would create, for a refusal
  that says the file holds code and never suggests loading it unsafely.

`load_checked(name)` runs them all around `SegGPT.from_pretrained`; `SegGPTPredictor` and `VideoSegmenter`
load through it. The natural home of these calls is `seggpt.weights.load_model` (see `load_checked`).
"""
from __future__ import annotations

import io
import json
import math
import os
import pickletools
import struct
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import InputError, is_integer

PACKAGED_DIR = Path(__file__).resolve().parent / "weights"
FORMAT_TAG = "seggpt-vos/1"  # as seggpt.weights.FORMAT_TAG (torch-free copy)
MAX_HEADER_BYTES = 100 * 2 ** 20

#: bytes per element of the safetensors dtypes
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "I16": 2,
                "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}

#: SegGPTConfig fields: (kind, minimum, maximum) - generous bounds that no real model reaches
_FIELDS: Dict[str, Tuple[str, float, float]] = {
    "image_size": ("pair", 1, 8192),
    "patch_size": ("int", 1, 256),
    "embed_dim": ("int", 1, 16384),
    "depth": ("int", 1, 512),
    "num_heads": ("int", 1, 1024),
    "mlp_ratio": ("float", 0.01, 64),
    "qkv_bias": ("bool", 0, 1),
    "layer_norm_eps": ("float", 0.0, 1.0),
    "merge_index": ("int", 0, 511),
    "feature_layers": ("list", 0, 511),
    "decoder_dim": ("int", 1, 8192),
    "pretrain_image_size": ("int", 1, 8192),
    "loss_beta": ("float", 0.0, 1e6),
    "drop_path_rate": ("float", 0.0, 1.0),
}


class WeightsFileError(InputError):
    """A weights file that cannot be used (one line naming the file); `load_checked` raises WeightsError."""


# ---------------------------------------------------------------------------------------------- names


def packaged_weights(name: object) -> Optional[Path]:
    """The packaged file of a packaged name ("small"), else None. A path (./small, a/b) is never a name."""
    text = str(name)
    if not text or "/" in text or os.sep in text or text.startswith((".", "~")) or text.endswith(".safetensors"):
        return None
    path = PACKAGED_DIR / f"{text}.safetensors"
    return path if path.is_file() else None


def weights_input(weights: Optional[str]) -> Optional[str]:
    """The local file or folder a --weights value reads (an input no output may touch), or None
    (a packaged name or a Hub id)."""
    if not weights or packaged_weights(weights) is not None:
        return None
    return weights if os.path.lexists(os.path.expanduser(weights)) else None


def resolve_weights_name(name: object) -> str:
    """What to load for a --weights value: a packaged name wins over a local file or folder of that name."""
    packaged = packaged_weights(name)
    if packaged is None:
        return str(name)
    if os.path.lexists(str(name)):
        import logging

        logging.getLogger("seggpt.weights").warning(
            "%s: the packaged model is used; a file or folder of that name is here too: pass ./%s to load it",
            name, name)
    return str(packaged)


# ---------------------------------------------------------------------------------------------- safetensors


def read_safetensors_header(path: "str | os.PathLike") -> Tuple[Dict[str, Dict[str, Any]], Dict[str, str]]:
    """(tensors: name -> {"dtype", "shape", "data_offsets"}, metadata) from the header, every entry checked."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise WeightsFileError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
            (n,) = struct.unpack("<Q", head)
            if n > min(MAX_HEADER_BYTES, size - 8):
                raise WeightsFileError(f"{path}: not a safetensors file (a header of {n} bytes in a file of {size})")
            raw = f.read(n)
    except OSError as e:
        raise WeightsFileError(f"{path}: cannot read the file ({e.strerror or e})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WeightsFileError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise WeightsFileError(f"{path}: not a safetensors file (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise WeightsFileError(f"{path}: the safetensors metadata must map names to strings")
    data_size = size - 8 - n
    for name, entry in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict):
            raise WeightsFileError(f"{where}: its header entry is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in _DTYPE_BYTES:
            raise WeightsFileError(f"{where}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(is_integer(s) and s >= 0 for s in shape):
            raise WeightsFileError(f"{where}: shape {shape!r} is not a list of sizes >= 0")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(is_integer(o) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise WeightsFileError(f"{where}: data offsets {offsets!r} lie outside the file (truncated?)")
        if offsets[1] - offsets[0] != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise WeightsFileError(f"{where}: {offsets[1] - offsets[0]} bytes for a {dtype} tensor of shape {shape}")
    return header, metadata


def check_config_dict(cfg: object, where: str) -> Dict[str, Any]:
    """A SegGPT config mapping (our metadata's): known keys, JSON types, ranges. Returns it."""
    if not isinstance(cfg, dict):
        raise WeightsFileError(f"{where}: the model config must be a JSON object, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(_FIELDS))
    if unknown:
        raise WeightsFileError(f"{where}: unknown model config key(s) {', '.join(map(repr, unknown))} "
                               f"(known: {', '.join(_FIELDS)})")
    for key, value in cfg.items():
        kind, lo, hi = _FIELDS[key]

        def bad(expected: str) -> WeightsFileError:
            return WeightsFileError(f"{where}: model config {key} = {value!r}: expected {expected}")

        ints = [value] if kind == "int" else (value if kind in ("pair", "list") else None)
        if kind == "bool":
            if not isinstance(value, bool):
                raise bad("true or false")
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
                raise bad(f"a number from {lo:g} to {hi:g}")
        else:
            if not isinstance(ints, list) or (kind == "pair" and len(ints) != 2) or (kind == "list" and not ints):
                raise bad("a list of 2 integers" if kind == "pair" else "a non-empty list of integers")
            if not all(is_integer(v) and lo <= v <= hi for v in ints):
                raise bad(f"{'integers' if kind != 'int' else 'an integer'} from {lo:g} to {hi:g}")
    return cfg


def _config_of(cfg: Mapping[str, Any], where: str):
    from .config import SegGPTConfig  # torch-free

    try:
        return SegGPTConfig.from_dict(dict(cfg))
    except (ValueError, TypeError) as e:
        raise WeightsFileError(f"{where}: invalid model config ({e})") from None


def expected_shapes(config) -> Dict[str, Tuple[int, ...]]:
    """Shapes some tensors must have for a SegGPTConfig (official key names; blocks.0 stands for every block)."""
    e, p, d = config.embed_dim, config.patch_size, config.decoder_dim
    h, w = config.image_size
    grid = config.pretrain_image_size // p
    return {
        "patch_embed.proj.weight": (e, 3, p, p),
        "pos_embed": (1, grid * grid + 1, e),
        "blocks.0.attn.qkv.weight": (3 * e, e),
        "blocks.0.attn.rel_pos_h": (2 * (2 * h // p) - 1, config.head_dim),
        "blocks.0.attn.rel_pos_w": (2 * (w // p) - 1, config.head_dim),
        "blocks.0.mlp.fc1.weight": (config.mlp_dim, e),
        "decoder_embed.weight": (p * p * d, e * len(config.feature_layers)),
        "decoder_pred.0.weight": (d, d, 3, 3),
    }


def check_against_header(config, header: Mapping[str, Mapping[str, Any]], where: str) -> None:
    """The config's sizes against the tensors in the header (before any tensor is allocated)."""
    blocks = {int(k.split(".")[1]) for k in header if k.startswith("blocks.") and k.split(".")[1].isdigit()}
    if blocks and len(blocks) != config.depth:
        raise WeightsFileError(f"{where}: the model config says depth {config.depth}, the file holds "
                               f"{len(blocks)} blocks")
    for key, shape in expected_shapes(config).items():
        entry = header.get(key)
        if entry is not None and tuple(entry["shape"]) != shape:
            raise WeightsFileError(f"{where}: the model config implies {key} of shape {shape}, the file holds "
                                   f"{tuple(entry['shape'])}")


def check_weights_file(path: "str | os.PathLike") -> None:
    """Every header-level check of one weights file (see the module docstring); WeightsFileError if one fails."""
    path = Path(path)
    if path.is_dir():
        cfg = path / "config.json"
        if cfg.exists():
            check_config_json(cfg)
        return
    if path.suffix != ".safetensors":
        return
    header, metadata = read_safetensors_header(path)
    ints = sorted(k for k, v in header.items() if v["dtype"] not in _FLOAT_DTYPES)
    if ints:
        raise WeightsFileError(f"{path}: tensor {ints[0]!r} is {header[ints[0]]['dtype']}"
                               f"{f' (+{len(ints) - 1} more)' if len(ints) > 1 else ''}: weights must be floating point")
    if metadata.get("format") == FORMAT_TAG and "config" in metadata:
        try:
            raw = json.loads(metadata["config"])
        except ValueError:
            raise WeightsFileError(f"{path}: the model config in its metadata is not JSON") from None
        config = _config_of(check_config_dict(raw, str(path)), str(path))
        check_against_header(config, header, str(path))
    cfg = path.parent / "config.json"
    if cfg.is_file() and path.name == "model.safetensors":
        check_config_json(cfg)


#: transformers config.json keys that size the model, with bounds
_HF_SIZES = {"hidden_size": (1, 16384), "num_hidden_layers": (1, 512), "num_attention_heads": (1, 1024),
             "patch_size": (1, 256), "decoder_hidden_size": (1, 8192), "pretrain_image_size": (1, 8192),
             "mlp_dim": (1, 1 << 20), "merge_index": (0, 511)}


def check_config_json(path: "str | os.PathLike") -> Dict[str, Any]:
    """A transformers config.json: a JSON object whose size keys are sane integers."""
    path = Path(path)
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise WeightsFileError(f"{path}: not a readable JSON file ({type(e).__name__})") from None
    if not isinstance(cfg, dict):
        raise WeightsFileError(f"{path}: a model config must be a JSON object, got a {type(cfg).__name__}")
    for key, (lo, hi) in _HF_SIZES.items():
        value = cfg.get(key)
        if value is None:
            continue
        if not is_integer(value) or not lo <= value <= hi:
            raise WeightsFileError(f"{path}: {key} = {value!r}: expected an integer from {lo} to {hi}")
    size = cfg.get("image_size")
    if size is not None:
        sizes = [size, size] if is_integer(size) else size
        if (not isinstance(sizes, list) or len(sizes) != 2
                or not all(is_integer(v) and 1 <= v <= 16384 for v in sizes)):
            raise WeightsFileError(f"{path}: image_size = {size!r}: expected an integer or 2 integers from 1 to 16384")
    layers = cfg.get("intermediate_hidden_state_indices")
    if layers is not None and (not isinstance(layers, list) or not layers
                               or not all(is_integer(v) and v >= 0 for v in layers)):
        raise WeightsFileError(f"{path}: intermediate_hidden_state_indices = {layers!r}: expected block indices")
    return cfg


# ---------------------------------------------------------------------------------------------- pickles

#: what a weights-only torch.load builds besides tensors (only used to explain a refusal torch made)
_PLAIN = ("collections.OrderedDict", "argparse.Namespace", "numpy.core.multiarray._reconstruct", "numpy.dtype",
          "numpy.ndarray", "numpy._core.multiarray._reconstruct", "_codecs.encode",
          *(f"builtins.{n}" for n in ("set", "frozenset", "bytearray", "bytes", "slice", "complex", "int", "float",
                                      "bool", "str", "list", "dict", "tuple")))
_TORCH_PLAIN = {"Size", "device", "Parameter", "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16",
                "int8", "uint8", "bool"}


def _plain(name: str) -> bool:
    if name in _PLAIN:
        return True
    last = name.rsplit(".", 1)[-1]
    return name.startswith("torch.") and (last.endswith("Storage") or "._rebuild" in name or last in _TORCH_PLAIN)


def pickle_globals(path: "str | os.PathLike") -> List[str]:
    """Every global (module.name) a pickled checkpoint names, in order; [] where none can be read."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith("data.pkl")]
                data = z.read(names[0]) if names else b""
        else:
            data = path.read_bytes()
    except (OSError, zipfile.BadZipFile, KeyError):
        return []
    found: List[str] = []
    strings: List[str] = []
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                found.append(arg.replace(" ", "."))
            elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(arg)
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            if op.name == "STOP":
                break
    except Exception:  # noqa: BLE001 - a damaged pickle: torch's own error says so
        pass
    return list(dict.fromkeys(g.replace("__builtin__.", "builtins.", 1) for g in found))


def code_globals(path: "str | os.PathLike") -> List[str]:
    """The Python callables (module.name) a pickled checkpoint names beyond tensors and plain containers."""
    return [g for g in pickle_globals(path) if not _plain(g)]


def integer_only(path: "str | os.PathLike") -> Optional[str]:
    """The storage types of a pickled checkpoint when none of them is floating point (integer weights), else None."""
    storages = [g.split(".")[-1] for g in pickle_globals(path) if g.startswith("torch.") and g.endswith("Storage")]
    floating = ("FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "UntypedStorage")
    if storages and not any(s in floating for s in storages):
        return ", ".join(storages)
    return None


def refusal_message(path: "str | os.PathLike", names: List[str]) -> str:
    """Why a pickled checkpoint is not loaded: it holds code (never: how to load it anyway)."""
    shown = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
    return (f"{path}: refused: besides tensors the file holds Python code that loading would run ({shown}); "
            f"weights are only ever read as plain tensors. Use a .safetensors file, or re-save the tensors "
            f"from a source you trust")


# ---------------------------------------------------------------------------------------------- torch level


def check_state(state: Mapping[str, Any], source: str) -> None:
    """Every tensor of a state dict floating point and finite (torch); WeightsFileError naming the first bad one."""
    import torch

    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        if not value.is_floating_point():
            raise WeightsFileError(f"{source}: tensor {key!r} is {str(value.dtype).replace('torch.', '')}: "
                                   f"weights must be floating point")
        if value.numel() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise WeightsFileError(f"{source}: tensor {key!r} holds {bad} NaN or infinite value(s) of {value.numel()}")


def load_checked(name_or_path: str, device=None):
    """`SegGPT.from_pretrained` with the checks above; every failure is a one-line WeightsError.

    Where the lead should move these calls: `check_weights_file(file)` (and, for a folder,
    `check_config_json`) in `seggpt.weights.resolve`/`read_checkpoint` before the config is built;
    `check_state(state, file)` in `load_model` right after `read_checkpoint`; `code_globals` +
    `refusal_message` in `_torch_load`'s except clause; `packaged_weights` first in `resolve`.
    """
    from .model import SegGPT
    from .weights import WeightsError, check_name_given, resolve

    check_name_given(name_or_path)  # before a config.json of the current folder could be read for it
    name = resolve_weights_name(name_or_path)
    local = Path(os.path.expanduser(name))
    try:
        if local.is_dir() and (local / "config.json").exists():
            check_config_json(local / "config.json")
        if local.exists():
            file, _ = resolve(name)
            check_weights_file(file)
            if file.suffix != ".safetensors" and integer_only(file):
                raise WeightsFileError(f"{file}: its tensors are {integer_only(file)}: weights must be floating point")
    except WeightsFileError as e:
        raise WeightsError(str(e)) from None
    try:
        model = SegGPT.from_pretrained(name, device=device)
    except WeightsError as e:
        file = None
        try:
            file = resolve(name)[0] if local.exists() else None
        except WeightsError:
            pass
        code = code_globals(file) if file is not None and file.suffix != ".safetensors" else []
        if code:
            raise WeightsError(refusal_message(file, code)) from None
        if "weights only load failed" in str(e).lower() or "weights_only" in str(e):
            raise WeightsError(f"{file or name}: refused: the file holds Python objects besides tensors, and "
                               f"weights are only ever read as plain tensors") from None
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # a config the checks above let through
        raise WeightsError(f"{name_or_path}: cannot build the model from this file ({str(e).strip() or type(e).__name__})"
                           ) from None
    try:
        check_state(model.state_dict(), str(name_or_path))
    except WeightsFileError as e:
        raise WeightsError(str(e)) from None
    return model


__all__ = ["WeightsFileError", "packaged_weights", "weights_input", "resolve_weights_name", "read_safetensors_header",
           "check_config_dict", "check_weights_file", "check_config_json", "expected_shapes", "check_against_header",
           "pickle_globals", "code_globals", "integer_only", "refusal_message", "check_state", "load_checked"]
