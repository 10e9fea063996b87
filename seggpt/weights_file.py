"""Weights files, torch-free: which file a name means, and every check that needs no tensor.

`seggpt.weights.load_model` (what ``SegGPT.from_pretrained`` runs) reads the tensors only after these
checks, so that a wrong file fails with one line naming it before any model is built: a metadata
config with ``depth: 999`` once built a 999-block model for 77 s before failing, a config that was not
JSON ended in a traceback, and a local file named ``small`` took the place of the packaged model.

* `resolve(name)`: a packaged name ("small"), a local file or folder, or a Hub id -> one local file,
  with the config a transformers ``config.json`` beside it stores (read by `read_config_json`);
* `check_weights_file(path)`: a safetensors header (`read_safetensors_header`: an 8-byte little-endian
  length, then that many bytes of JSON, each entry checked against the file's size) and our metadata
  config against the tensor shapes it lists; returns that config;
* `recommended_settings(path)`: the engine settings a file of ours recommends for itself;
* `code_globals(path)` / `refusal_message`: the Python callables a pickled checkpoint would create, for
  a refusal that says the file holds code and never suggests loading it unsafely.

A model config is checked by `SegGPTConfig` itself (seggpt.config); here only the file's form is.
"""
from __future__ import annotations

import io
import json
import logging
import math
import os
import pickletools
import re
import struct
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .config import FIELDS, PRESETS, SegGPTConfig, field_problem
from .errors import WeightsError, is_integer

logger = logging.getLogger("seggpt.weights")

#: the format of our own files (their safetensors metadata "format"); their config is in "config"
FORMAT_TAG = "seggpt-vos/1"
PACKAGED_DIR = Path(__file__).resolve().parent / "weights"
#: Hub repositories we know, with the file that holds the weights
HUB_FILES = {
    "BAAI/SegGPT": "seggpt_vit_large.pth",
    "BAAI/seggpt-vit-large": "model.safetensors",
}
MAX_HEADER_BYTES = 100 * 2 ** 20

#: the official weights: the default of the CLIs (seggpt.run, vos.run), for the best masks
OFFICIAL_WEIGHTS = "BAAI/seggpt-vit-large"
#: the packaged model: the app's default, so that it starts offline
PACKAGED_WEIGHTS = "small"
#: why each default is the default, and how to choose the other (`default_weights_note`)
_DEFAULT_REASONS = {
    OFFICIAL_WEIGHTS: ("the official model, the best masks; downloaded once from the Hugging Face Hub, about 1.5 GB; "
                       f"--weights {PACKAGED_WEIGHTS} runs the packaged small model offline"),
    PACKAGED_WEIGHTS: ("the packaged small model, so {it} starts offline and answers fast on a CPU; "
                       f"--weights {OFFICIAL_WEIGHTS} for the official model"),
}


def default_weights_note(weights: str, chosen_by: Optional[str] = None, default_of: str = "this command") -> str:
    """The words of a command's INFO line about its weights: which weights, and why.

    The same weights are the best choice for one command and a slow start for another (the official model
    is a 1.5 GB download; the app should start offline), so a user who did not choose should learn, at
    start, what they got, why, and how to choose the other. `chosen_by` names the option or file that set
    the weights (``"--weights"``, ``"--config run.yaml"``): then the note only says so. `default_of` names
    who defaults to them otherwise: ``"this command"`` (a CLI), ``"the app"``.

    >>> default_weights_note("small", "--weights")
    'weights small (--weights)'
    """
    if chosen_by:
        return f"weights {weights} ({chosen_by})"
    reason = _DEFAULT_REASONS.get(weights)
    if reason is None:  # a default of another kind (a caller's own): no reason to give but that it is one
        return f"weights {weights} (the default of {default_of})"
    it = "the app" if default_of == "the app" else "it"
    return f"weights {weights} (the default of {default_of}: {reason.format(it=it)})"


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


def resolve(name_or_path: object) -> Tuple[Path, Optional[SegGPTConfig]]:
    """The local weights file a name means, and the config a transformers config.json beside it stores.

    In this order: a packaged name ("small", whatever the current folder holds: a local file or folder of
    that name is ``./small``), a local folder (the one weights file in it), a local file, a Hub id
    (fetched through huggingface_hub and its cache). An empty name is refused: never "the current folder".
    """
    text = str(name_or_path)
    if not text.strip():
        raise WeightsError("weights: an empty name; give a packaged name (small), a Hub id or a checkpoint file")
    packaged = packaged_weights(text)
    if packaged is not None:
        if os.path.lexists(text):
            logger.warning("%s: the packaged model is used; a file or folder of that name is here too: pass ./%s "
                           "to load it", text, text)
        return packaged, None
    path = Path(os.path.expanduser(text))
    if path.is_dir():
        return _find_in_folder(path)
    if path.exists() and not path.is_file():
        raise WeightsError(f"{text}: not a regular file (a FIFO or a device): weights are read from files")
    if path.is_file():
        beside = path.parent / "config.json"
        if path.name == "model.safetensors" and beside.is_file():
            read_config_json(beside)  # checked, not used: a file named alone is read with its own or inferred config
        return path, None
    if text in PRESETS:
        raise WeightsError(f"{text}: this preset has no packaged weights; pass a checkpoint file or a Hub id "
                           f"(e.g. {OFFICIAL_WEIGHTS})")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", text) and not text.startswith((".", "/")):
        return _download(text)
    raise WeightsError(f"{text}: no such file or folder, and not a Hub id like {OFFICIAL_WEIGHTS}")


def _find_in_folder(folder: Path) -> Tuple[Path, Optional[SegGPTConfig]]:
    cfg_file = folder / "config.json"
    config = read_config_json(cfg_file) if cfg_file.exists() else None
    for name in ("model.safetensors", "pytorch_model.bin", "seggpt_vit_large.pth"):
        if (folder / name).exists():
            return folder / name, config
    candidates = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".pth", ".pt", ".bin"))
    if len(candidates) == 1:
        return candidates[0], config
    if not candidates:
        raise WeightsError(f"{folder}: no weights file (.safetensors, .pth, .pt or .bin) in this folder")
    raise WeightsError(f"{folder}: several weights files, pass one of them: {', '.join(p.name for p in candidates)}")


def _download(repo_id: str) -> Tuple[Path, Optional[SegGPTConfig]]:
    # imported here: huggingface_hub pulls in an HTTP stack that only a Hub download needs
    from huggingface_hub import hf_hub_download

    filename = HUB_FILES.get(repo_id, "model.safetensors")
    try:
        file = Path(hf_hub_download(repo_id, filename))
        cfg = Path(hf_hub_download(repo_id, "config.json")) if filename == "model.safetensors" else None
    except Exception as e:  # noqa: BLE001 - offline, unknown repository, HTTP errors: one line
        raise WeightsError(
            f"{repo_id}: cannot fetch {filename} from the Hugging Face Hub ({type(e).__name__}). Offline? Download "
            f"it once where there is a network (huggingface-cli download {repo_id} {filename}) so that it is in the "
            f"cache, or pass --weights /path/to/{filename}"
        ) from None
    return file, (read_config_json(cfg) if cfg is not None else None)


# ---------------------------------------------------------------------------------------------- configs


def config_from_mapping(raw: object, where: str) -> SegGPTConfig:
    """Our config from the mapping a file stores (our metadata, a training checkpoint); one line naming `where`."""
    if not isinstance(raw, dict):
        raise WeightsError(f"{where}: the model config must be a JSON object, got {type(raw).__name__}")
    try:
        return SegGPTConfig.from_dict(raw)
    except ValueError as e:
        raise WeightsError(f"{where}: {e}") from None


#: transformers' config.json keys that are one of our fields (the same value, the same bounds)
_TRANSFORMERS_FIELDS = {
    "hidden_size": "embed_dim", "num_hidden_layers": "depth", "num_attention_heads": "num_heads",
    "patch_size": "patch_size", "qkv_bias": "qkv_bias", "layer_norm_eps": "layer_norm_eps",
    "merge_index": "merge_index", "intermediate_hidden_state_indices": "feature_layers",
    "decoder_hidden_size": "decoder_dim", "pretrain_image_size": "pretrain_image_size", "beta": "loss_beta",
}


def read_config_json(path: "str | os.PathLike") -> SegGPTConfig:
    """Our config from a transformers SegGptConfig file (config.json), each value checked by the key it has there.

    transformers' ``image_size`` is the whole canvas (2H, W) and ``mlp_dim`` a width (null: 4x the
    hidden size); a missing key takes its transformers default, which is our default too (ViT-L).
    """
    path = Path(path)
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable JSON file ({type(e).__name__})") from None
    if not isinstance(cfg, dict):
        raise WeightsError(f"{path}: a model config must be a JSON object, got a {type(cfg).__name__}")
    fields: Dict[str, Any] = {}
    for key, name in _TRANSFORMERS_FIELDS.items():
        if cfg.get(key) is not None:
            problem = field_problem(name, cfg[key])
            if problem:
                raise WeightsError(f"{path}: {key} = {cfg[key]!r}: expected {problem}")
            fields[name] = cfg[key]
    size = cfg.get("image_size")
    if size is not None:
        canvas = [size, size] if is_integer(size) else size
        largest = 2 * int(FIELDS["image_size"][2])
        if (not isinstance(canvas, list) or len(canvas) != 2
                or not all(is_integer(v) and 2 <= v <= largest for v in canvas)):
            raise WeightsError(f"{path}: image_size = {size!r}: expected an integer or 2 integers from 2 to {largest}")
        fields["image_size"] = (canvas[0] // 2, canvas[1])
    mlp_dim = cfg.get("mlp_dim")
    if mlp_dim is not None:
        hidden = fields.get("embed_dim", SegGPTConfig.embed_dim)
        _, low, high = FIELDS["mlp_ratio"]  # mlp_dim = mlp_ratio x hidden_size
        low, high = max(1, math.ceil(low * hidden)), math.floor(high * hidden)
        if not is_integer(mlp_dim) or not low <= mlp_dim <= high:
            raise WeightsError(f"{path}: mlp_dim = {mlp_dim!r}: expected an integer from {low} to {high}")
        fields["mlp_ratio"] = mlp_dim / hidden
    try:
        return SegGPTConfig(**fields)
    except ValueError as e:
        raise WeightsError(f"{path}: {e}") from None


def config_to_transformers(cfg: SegGPTConfig) -> Dict[str, Any]:
    """A transformers SegGptConfig kwargs dict for our config (tests and benchmarks build the oracle with it)."""
    fields = {key: getattr(cfg, name) for key, name in _TRANSFORMERS_FIELDS.items()}
    return {**fields, "intermediate_hidden_state_indices": list(cfg.feature_layers), "mlp_dim": cfg.mlp_dim,
            "image_size": list(cfg.canvas_size), "drop_path_rate": 0.0, "hidden_act": "gelu"}


# ---------------------------------------------------------------------------------------------- safetensors

#: bytes per element of the safetensors dtypes
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "I16": 2,
                "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}


def read_safetensors_header(path: "str | os.PathLike") -> Tuple[Dict[str, Dict[str, Any]], Dict[str, str]]:
    """(tensors: name -> {"dtype", "shape", "data_offsets"}, metadata) from the header, every entry checked."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise WeightsError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
            (n,) = struct.unpack("<Q", head)
            if n > min(MAX_HEADER_BYTES, size - 8):
                raise WeightsError(f"{path}: not a safetensors file (a header of {n} bytes in a file of {size})")
            raw = f.read(n)
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the file ({e.strerror or e})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WeightsError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: not a safetensors file (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise WeightsError(f"{path}: the safetensors metadata must map names to strings")
    data_size = size - 8 - n
    for name, entry in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict):
            raise WeightsError(f"{where}: its header entry is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in _DTYPE_BYTES:
            raise WeightsError(f"{where}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(is_integer(s) and s >= 0 for s in shape):
            raise WeightsError(f"{where}: shape {shape!r} is not a list of sizes >= 0")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise WeightsError(f"{where}: data offsets {offsets!r} lie outside the file (truncated?)")
        if offsets[1] - offsets[0] != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise WeightsError(f"{where}: {offsets[1] - offsets[0]} bytes for a {dtype} tensor of shape {shape}")
    return header, metadata


def expected_shapes(config: SegGPTConfig) -> Dict[str, Tuple[int, ...]]:
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


def check_against_header(config: SegGPTConfig, header: Mapping[str, Mapping[str, Any]], where: str) -> None:
    """The config's sizes against the tensors in the header (before any tensor is allocated)."""
    blocks = {int(k.split(".")[1]) for k in header if k.startswith("blocks.") and k.split(".")[1].isdigit()}
    if blocks and len(blocks) != config.depth:
        raise WeightsError(f"{where}: the model config says depth {config.depth}, the file holds {len(blocks)} blocks")
    for key, shape in expected_shapes(config).items():
        entry = header.get(key)
        if entry is not None and tuple(entry["shape"]) != shape:
            raise WeightsError(f"{where}: the model config implies {key} of shape {shape}, the file holds "
                               f"{tuple(entry['shape'])}")


def check_weights_file(path: "str | os.PathLike") -> Optional[SegGPTConfig]:
    """Every check of a safetensors file that needs no tensor; returns the model config our metadata stores.

    None for a file that stores none (transformers', the official one) and for pickled checkpoints, whose
    contents only `seggpt.weights.read_checkpoint` can read.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        return None
    header, metadata = read_safetensors_header(path)
    if metadata.get("format") != FORMAT_TAG or "config" not in metadata:
        return None
    try:
        raw = json.loads(metadata["config"])
    except ValueError:
        raise WeightsError(f"{path}: the model config in its metadata is not JSON") from None
    config = config_from_mapping(raw, str(path))
    check_against_header(config, header, str(path))
    return config


def recommended_settings(path: "str | os.PathLike") -> Dict[str, Any]:
    """The settings a weights file of ours recommends (metadata "recommended": {"engine": {...}}).

    They sit between the dataclass defaults and a config file in the precedence; the engine's
    loader checks them like any other layer. Files of other formats recommend nothing.
    """
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    text = read_safetensors_header(path)[1].get("recommended")
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise WeightsError(f"{path}: its recommended settings are not JSON") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: its recommended settings must be a mapping, got {type(data).__name__}")
    return data


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


def refusal_message(path: "str | os.PathLike", names: List[str]) -> str:
    """Why a pickled checkpoint is not loaded: it holds code (never: how to load it anyway)."""
    shown = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
    return (f"{path}: refused: besides tensors the file holds Python code that loading would run ({shown}); "
            f"weights are only ever read as plain tensors. Use a .safetensors file, or re-save the tensors "
            f"from a source you trust")


__all__ = ["FORMAT_TAG", "OFFICIAL_WEIGHTS", "PACKAGED_WEIGHTS", "default_weights_note", "packaged_weights",
           "weights_input", "resolve", "config_from_mapping", "read_config_json", "config_to_transformers",
           "read_safetensors_header", "expected_shapes", "check_against_header", "check_weights_file",
           "recommended_settings", "pickle_globals", "code_globals", "refusal_message"]
