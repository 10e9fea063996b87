"""SegGPT checkpoint files in every form users have them: find, read, check, write state dicts.

This module knows files, not the model class: ``SegGPT.from_pretrained`` (seggpt.model) builds the
model from what :func:`load_state` returns, and ``SegGPT.save_pretrained`` writes through
:func:`save_state`, so the import goes one way (model -> weights).

Accepted sources (:func:`load_state`):
* a preset with packaged weights of ours, e.g. ``"small"``;
* a Hub id: ``"BAAI/seggpt-vit-large"`` (transformers layout: config.json + safetensors) or
  ``"BAAI/SegGPT"`` (the official ``seggpt_vit_large.pth``), fetched through huggingface_hub and its cache;
* a local file: official ``.pth`` (``{"model": ...}`` or a bare state dict; MAE-style training
  checkpoints with ``args``/optimizer state too), a transformers ``.safetensors``/``.bin`` (with or
  without the ``model.`` prefix), our own ``.safetensors`` (config in its metadata), or one of our
  training checkpoints (``last.pt``, its model config stored beside the weights);
* a local folder holding any of those (a transformers ``save_pretrained`` folder included).

The config is read from the file where it is stored (ours, transformers' config.json) and otherwise
inferred from tensor shapes; the state dict is then checked key by key, so that a wrong or truncated
file fails with a message naming what is missing or unexpected, never with a shape error deep inside.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .config import PRESETS, SegGPTConfig, get_config
from .errors import InputError
from .io import atomic_path

FORMAT_TAG = "seggpt-vos/1"
PACKAGED_DIR = Path(__file__).resolve().parent / "weights"
#: Hub repositories we know, with the file that holds the weights
HUB_FILES = {
    "BAAI/SegGPT": "seggpt_vit_large.pth",
    "BAAI/seggpt-vit-large": "model.safetensors",
}


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


class WeightsError(InputError):
    """A checkpoint that cannot be found, read or matched to the model (one-line message)."""


# ---------------------------------------------------------------------------- key conventions
#: (official name, transformers name) prefixes; "#" stands for a block index
_KEY_PAIRS = [
    ("patch_embed.proj.", "embeddings.patch_embeddings.projection."),
    ("segment_token_x", "embeddings.segment_token_input"),
    ("segment_token_y", "embeddings.segment_token_prompt"),
    ("type_token_cls", "embeddings.type_token_semantic"),
    ("type_token_ins", "embeddings.type_token_instance"),
    ("pos_embed", "embeddings.position_embeddings"),
    ("mask_token", "embeddings.mask_token"),
    ("norm.", "encoder.layernorm."),
    ("blocks.#.attn.", "encoder.layers.#.attention."),
    ("blocks.#.mlp.fc1.", "encoder.layers.#.mlp.lin1."),
    ("blocks.#.mlp.fc2.", "encoder.layers.#.mlp.lin2."),
    ("blocks.#.norm1.", "encoder.layers.#.layernorm_before."),
    ("blocks.#.norm2.", "encoder.layers.#.layernorm_after."),
    ("decoder_embed.", "decoder.decoder_embed."),
    ("decoder_pred.0.", "decoder.decoder_pred.conv."),
    ("decoder_pred.1.", "decoder.decoder_pred.layernorm."),
    ("decoder_pred.3.", "decoder.decoder_pred.head."),
]


def _rules(src: int, dst: int, encoder_prefix: str = ""):
    """Compiled (pattern, replacement) rules from column src to column dst of _KEY_PAIRS.

    encoder_prefix goes before every target name but the decoder's (transformers keeps its decoder
    beside `model`, not inside it).
    """
    rules = []
    for pair in _KEY_PAIRS:
        pattern = "^" + re.escape(pair[src]).replace("\\#", r"(\d+)").replace("#", r"(\d+)")
        if not pair[src].endswith("."):
            pattern += "$"
        prefix = "" if pair[dst].startswith("decoder") else encoder_prefix
        rules.append((re.compile(pattern), prefix + pair[dst].replace("#", r"\1")))
    return rules


_FROM_HF = _rules(1, 0)
_TO_HF = _rules(0, 1, encoder_prefix="model.")


def _rename(state: Dict[str, torch.Tensor], rules) -> Dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for pattern, repl in rules:
            new, n = pattern.subn(repl, key)
            if n:
                key = new
                break
        out[key] = value
    return out


def is_transformers_state_dict(state: Dict[str, torch.Tensor]) -> bool:
    return any(k.startswith(("model.embeddings.", "embeddings.", "model.encoder.", "encoder.layers.")) for k in state)


def from_transformers_keys(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename transformers' SegGpt keys (with or without the ``model.`` prefix) to the official ones."""
    return _rename({k[len("model."):] if k.startswith("model.") else k: v for k, v in state.items()}, _FROM_HF)


def to_transformers_keys(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official key names -> transformers' `SegGptForImageSegmentation` names (used by tests and benchmarks)."""
    return _rename(state, _TO_HF)


# ---------------------------------------------------------------------------- configs
def config_from_transformers(cfg: Dict[str, Any]) -> SegGPTConfig:
    """Our config from a transformers SegGptConfig dict (config.json)."""
    image_size = cfg.get("image_size", [896, 448])
    if isinstance(image_size, int):
        image_size = [image_size, image_size]
    hidden = int(cfg.get("hidden_size", 1024))
    mlp_dim = cfg.get("mlp_dim") or hidden * 4
    return SegGPTConfig(
        image_size=(int(image_size[0]) // 2, int(image_size[1])),
        patch_size=int(cfg.get("patch_size", 16)),
        embed_dim=hidden,
        depth=int(cfg.get("num_hidden_layers", 24)),
        num_heads=int(cfg.get("num_attention_heads", 16)),
        mlp_ratio=float(mlp_dim) / hidden,
        qkv_bias=bool(cfg.get("qkv_bias", True)),
        layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-6)),
        merge_index=int(cfg.get("merge_index", 2)),
        feature_layers=tuple(cfg.get("intermediate_hidden_state_indices", (5, 11, 17, 23))),
        decoder_dim=int(cfg.get("decoder_hidden_size", 64)),
        pretrain_image_size=int(cfg.get("pretrain_image_size", 224)),
        loss_beta=float(cfg.get("beta", 0.01)),
    )


def config_to_transformers(cfg: SegGPTConfig) -> Dict[str, Any]:
    """A transformers SegGptConfig kwargs dict for our config (tests and benchmarks build the oracle with it)."""
    return dict(
        hidden_size=cfg.embed_dim,
        num_hidden_layers=cfg.depth,
        num_attention_heads=cfg.num_heads,
        mlp_dim=cfg.mlp_dim,
        image_size=list(cfg.canvas_size),
        patch_size=cfg.patch_size,
        qkv_bias=cfg.qkv_bias,
        layer_norm_eps=cfg.layer_norm_eps,
        merge_index=cfg.merge_index,
        intermediate_hidden_state_indices=list(cfg.feature_layers),
        decoder_hidden_size=cfg.decoder_dim,
        pretrain_image_size=cfg.pretrain_image_size,
        beta=cfg.loss_beta,
        drop_path_rate=0.0,
        hidden_act="gelu",
    )


def infer_config(state: Dict[str, torch.Tensor], source: str = "checkpoint") -> SegGPTConfig:
    """Infer the sizes from tensor shapes (for files that carry no config, like the official .pth).

    Which blocks feed the decoder and where the streams merge cannot be read from shapes; we use the
    official rule (evenly spaced feature layers ending at the last block, merge after block 2).
    """
    try:
        proj = state["patch_embed.proj.weight"]
        rel_h = state["blocks.0.attn.rel_pos_h"]
        rel_w = state["blocks.0.attn.rel_pos_w"]
        pos = state["pos_embed"]
        dec = state["decoder_embed.weight"]
        fc1 = state["blocks.0.mlp.fc1.weight"]
        conv = state["decoder_pred.0.weight"]
    except KeyError as e:
        raise WeightsError(f"{source}: not a SegGPT checkpoint (missing {e.args[0]!r})") from None
    embed, patch = int(proj.shape[0]), int(proj.shape[-1])
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    head_dim = int(rel_h.shape[1])
    canvas_h, grid_w = (int(rel_h.shape[0]) + 1) // 2, (int(rel_w.shape[0]) + 1) // 2
    n_feat = int(dec.shape[1]) // embed
    step = max(depth // n_feat, 1)  # evenly spaced, ending at the last block: (5, 11, 17, 23) for ViT-L
    layers = tuple(depth - 1 - step * (n_feat - 1 - i) for i in range(n_feat))
    merge = min(2, layers[0] - 1)
    pretrain_grid = int(round((pos.shape[1] - 1) ** 0.5))
    try:
        return SegGPTConfig(
            image_size=(canvas_h // 2 * patch, grid_w * patch),
            patch_size=patch,
            embed_dim=embed,
            depth=depth,
            num_heads=embed // head_dim,
            mlp_ratio=int(fc1.shape[0]) / embed,
            merge_index=max(merge, 0),
            feature_layers=layers,
            decoder_dim=int(conv.shape[0]),
            pretrain_image_size=pretrain_grid * patch,
        )
    except ValueError as e:
        raise WeightsError(f"{source}: cannot infer a SegGPT config from its tensors ({e})") from None


# ---------------------------------------------------------------------------- files
def _torch_load(path: Path) -> Any:
    """torch.load without running pickled code; allow the argparse Namespace MAE-style checkpoints carry."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: file not found") from None
    except Exception as e:  # pickle errors, truncated zip archives, foreign globals
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: cannot read the checkpoint ({msg})") from None


def read_checkpoint(path: "str | os.PathLike") -> Tuple[Dict[str, torch.Tensor], Optional[SegGPTConfig]]:
    """State dict (official key names) and the config if the file stores one."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: file not found")
    config = None
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            state = load_file(str(path))
        except Exception as e:
            raise WeightsError(f"{path}: not a readable safetensors file ({str(e)[:200]})") from None
        if meta.get("format") == FORMAT_TAG and "config" in meta:
            config = SegGPTConfig.from_dict(json.loads(meta["config"]))
    else:
        obj = _torch_load(path)
        if isinstance(obj, dict) and isinstance(obj.get("model_config"), dict):  # our training checkpoints
            # tensors alone cannot tell which blocks feed the decoder: never guess for our own files
            config = SegGPTConfig.from_dict(obj["model_config"])
        if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
            obj = obj["model"]
        elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise WeightsError(f"{path}: no state dict found (expected a dict of tensors or {{'model': ...}})")
        state = obj
    if is_transformers_state_dict(state):
        state = from_transformers_keys(state)
    return state, config


def _find_in_folder(folder: Path) -> Tuple[Path, Optional[SegGPTConfig]]:
    config = None
    cfg_file = folder / "config.json"
    if cfg_file.exists():
        try:
            config = config_from_transformers(json.loads(cfg_file.read_text()))
        except (ValueError, TypeError) as e:
            raise WeightsError(f"{cfg_file}: invalid config ({e})") from None
    for name in ("model.safetensors", "pytorch_model.bin", "seggpt_vit_large.pth"):
        if (folder / name).exists():
            return folder / name, config
    candidates = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".pth", ".pt", ".bin"))
    if len(candidates) == 1:
        return candidates[0], config
    if not candidates:
        raise WeightsError(f"{folder}: no weights file (.safetensors, .pth, .pt or .bin) in this folder")
    raise WeightsError(f"{folder}: several weights files, pass one of them: {', '.join(p.name for p in candidates)}")


def check_name_given(name_or_path: object) -> None:
    """An empty weights name is refused: never "the current folder"."""
    if not str(name_or_path).strip():
        raise WeightsError("weights: an empty name; give a packaged name (small), a Hub id or a checkpoint file")


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


def resolve(name_or_path: str) -> Tuple[Path, Optional[SegGPTConfig]]:
    """Turn a preset, Hub id, file or folder into a local weights file (+ a config where one is stored)."""
    check_name_given(name_or_path)
    path = Path(os.path.expanduser(str(name_or_path)))
    if path.is_dir():
        return _find_in_folder(path)
    if path.exists() and not path.is_file():
        raise WeightsError(f"{name_or_path}: not a regular file (a FIFO or a device): weights are read from files")
    if path.is_file():
        return path, None
    packaged = PACKAGED_DIR / f"{name_or_path}.safetensors"
    if packaged.is_file():
        return packaged, None
    if str(name_or_path) in PRESETS:
        raise WeightsError(
            f"{name_or_path}: this preset has no packaged weights; pass a checkpoint file or a Hub id "
            f"(e.g. BAAI/seggpt-vit-large)"
        )
    if re.fullmatch(r"[\w.-]+/[\w.-]+", str(name_or_path)) and not str(name_or_path).startswith((".", "/")):
        return _download(str(name_or_path))
    raise WeightsError(f"{name_or_path}: no such file or folder, and not a Hub id like BAAI/seggpt-vit-large")


def _download(repo_id: str) -> Tuple[Path, Optional[SegGPTConfig]]:
    # imported here: huggingface_hub pulls in an HTTP stack that only a Hub download needs
    from huggingface_hub import hf_hub_download

    filename = HUB_FILES.get(repo_id, "model.safetensors")
    try:
        file = Path(hf_hub_download(repo_id, filename))
        config = None
        if filename == "model.safetensors":
            cfg = Path(hf_hub_download(repo_id, "config.json"))
            config = config_from_transformers(json.loads(cfg.read_text()))
        return file, config
    except Exception as e:
        kind = type(e).__name__
        raise WeightsError(
            f"{repo_id}: cannot fetch {filename} from the Hugging Face Hub ({kind}). Offline? Download it once "
            f"where there is a network (huggingface-cli download {repo_id} {filename}) so that it is in the cache, "
            f"or pass --weights /path/to/{filename}"
        ) from None


def check_state(expected: Dict[str, torch.Tensor], state: Dict[str, torch.Tensor], source: str) -> None:
    """WeightsError (one line) unless `state` has exactly the keys and shapes of `expected` (a model's state dict)."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))

    def short(keys):
        return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")

    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {short(unexpected)}")
        raise WeightsError(f"{source}: checkpoint does not match the model; " + "; ".join(parts))
    bad = [k for k in expected if tuple(expected[k].shape) != tuple(state[k].shape)]
    if bad:
        k = bad[0]
        raise WeightsError(
            f"{source}: shape mismatch for {k}: checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
            + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else "")
        )


def load_state(
    name_or_path: str, config: "str | SegGPTConfig | None" = None
) -> Tuple[Dict[str, torch.Tensor], SegGPTConfig, str]:
    """The state dict (official key names), its config and the file it came from, for any source.

    `config` (a preset name or a config) overrides the config stored in or inferred from the file.
    """
    file, stored = resolve(str(name_or_path))
    state, in_file = read_checkpoint(file)
    cfg = get_config(config) if config is not None else (in_file or stored or infer_config(state, str(file)))
    return state, cfg, str(file)


def recommended_settings(path: "str | os.PathLike") -> Dict[str, Any]:
    """The settings a weights file of ours recommends (metadata "recommended": {"engine": {...}}).

    They sit between the dataclass defaults and a config file in the precedence; the engine's
    loader checks them like any other layer. Files of other formats recommend nothing.
    """
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            text = (f.metadata() or {}).get("recommended")
    except Exception as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({str(e)[:200]})") from None
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise WeightsError(f"{path}: its recommended settings are not JSON") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: its recommended settings must be a mapping, got {type(data).__name__}")
    return data


def save_state(state: Dict[str, torch.Tensor], config: SegGPTConfig, path: "str | os.PathLike",
               recommended: Optional[Dict[str, Any]] = None) -> Path:
    """Our own format: one safetensors file, config (and recommended settings) in the metadata; atomic.
    Returns the file.

    A folder gets ``model.safetensors``; another suffix is replaced by ``.safetensors``.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / "model.safetensors" if path.is_dir() else path.with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    meta = {"format": FORMAT_TAG, "config": config.to_json()}
    if recommended:
        meta["recommended"] = json.dumps(recommended, sort_keys=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


__all__ = [
    "WeightsError", "OFFICIAL_WEIGHTS", "PACKAGED_WEIGHTS", "default_weights_note", "load_state", "save_state", "check_state", "recommended_settings", "read_checkpoint",
    "infer_config", "resolve",
    "from_transformers_keys", "to_transformers_keys", "config_from_transformers", "config_to_transformers",
]
