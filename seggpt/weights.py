"""The one way to load SegGPT weights (`load_model`, which ``SegGPT.from_pretrained`` runs) and to save them.

Accepted sources (`seggpt.weights_file.resolve` finds the file):
* a preset with packaged weights of ours, e.g. ``"small"``;
* a Hub id: ``"BAAI/seggpt-vit-large"`` (transformers layout: config.json + safetensors) or
  ``"BAAI/SegGPT"`` (the official ``seggpt_vit_large.pth``), fetched through huggingface_hub and its cache;
* a local file: official ``.pth`` (``{"model": ...}`` or a bare state dict; MAE-style training
  checkpoints with ``args``/optimizer state too), a transformers ``.safetensors``/``.bin`` (with or
  without the ``model.`` prefix), our own ``.safetensors`` (config in its metadata), or one of our
  training checkpoints (``last.pt``, its model config stored beside the weights);
* a local folder holding any of those (a transformers ``save_pretrained`` folder included).

Every check that needs no tensor runs first and torch-free (`seggpt.weights_file`: the name, the
safetensors header, a stored config against the tensor shapes); the config is the one stored with the
file (ours, transformers' config.json) or else inferred from tensor shapes; the state dict is then
checked key by key, shape by shape and value by value (`check_state`), so that a wrong, truncated or
damaged file fails with one line naming the file and what is wrong, never deep inside the model.
This module knows tensors; the model class knows nothing of files.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Type, Union

import torch
from safetensors.torch import load_file, save_file

from .config import SegGPTConfig, get_config
from .errors import WeightsError
from .io import atomic_path
from .model import SegGPT
from .weights_file import (FORMAT_TAG, check_weights_file, code_globals, config_from_mapping, pickle_globals,
                           recommended_settings, refusal_message, resolve)


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


def _renamed(key: str, rules) -> str:
    """`key` under the first of `rules` that matches it (as it is where none does)."""
    for pattern, repl in rules:
        new, n = pattern.subn(repl, key)
        if n:
            return new
    return key


def _rename(state: Dict[str, torch.Tensor], rules) -> Dict[str, torch.Tensor]:
    return {_renamed(key, rules): value for key, value in state.items()}


def is_transformers_state_dict(state: Dict[str, torch.Tensor]) -> bool:
    return any(k.startswith(("model.embeddings.", "embeddings.", "model.encoder.", "encoder.layers.")) for k in state)


def from_transformers_keys(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename transformers' SegGpt keys (with or without the ``model.`` prefix) to the official ones."""
    return _rename({k[len("model."):] if k.startswith("model.") else k: v for k, v in state.items()}, _FROM_HF)


def to_transformers_keys(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official key names -> transformers' `SegGptForImageSegmentation` names (used by tests and benchmarks)."""
    return _rename(state, _TO_HF)



def infer_config(state: Dict[str, torch.Tensor], source: str = "checkpoint") -> SegGPTConfig:
    """Infer the sizes from tensor shapes (for files that carry no config, like the official .pth).

    Which blocks feed the decoder and where the streams merge cannot be read from shapes; we use the
    official rule (evenly spaced feature layers ending at the last block, merge after block 2).
    """
    keys = ("patch_embed.proj.weight", "blocks.0.attn.rel_pos_h", "blocks.0.attn.rel_pos_w", "pos_embed",
            "decoder_embed.weight", "blocks.0.mlp.fc1.weight", "decoder_pred.0.weight")
    try:
        proj, rel_h, rel_w, pos, dec, fc1, conv = (state[key] for key in keys)
    except KeyError as e:
        raise WeightsError(f"{source}: not a SegGPT checkpoint (missing {e.args[0]!r})") from None
    embed, patch = int(proj.shape[0]), int(proj.shape[-1])
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    head_dim = int(rel_h.shape[1])
    canvas_h, grid_w = (int(rel_h.shape[0]) + 1) // 2, (int(rel_w.shape[0]) + 1) // 2
    n_feat = int(dec.shape[1]) // embed
    step = max(depth // n_feat, 1)  # evenly spaced, ending at the last block: (5, 11, 17, 23) for ViT-L
    layers = tuple(depth - 1 - step * (n_feat - 1 - i) for i in range(n_feat))
    pretrain_grid = int(round((pos.shape[1] - 1) ** 0.5))
    try:
        return SegGPTConfig(
            image_size=(canvas_h // 2 * patch, grid_w * patch),
            patch_size=patch,
            embed_dim=embed,
            depth=depth,
            num_heads=embed // head_dim,
            mlp_ratio=int(fc1.shape[0]) / embed,
            merge_index=max(min(2, layers[0] - 1), 0),
            feature_layers=layers,
            decoder_dim=int(conv.shape[0]),
            pretrain_image_size=pretrain_grid * patch,
        )
    except ValueError as e:
        raise WeightsError(f"{source}: cannot infer a SegGPT config from its tensors ({e})") from None


# ---------------------------------------------------------------------------- reading


def _torch_load(path: Path) -> Any:
    """torch.load without running pickled code; allow the argparse Namespace MAE-style checkpoints carry.

    A refusal says why (the file holds code, or other Python objects) and never how to load it anyway:
    torch's own message suggests ``weights_only=False``, which would run whatever the file holds.
    """
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle errors, truncated zip archives, foreign globals
        code = code_globals(path)
        if code:
            raise WeightsError(refusal_message(path, code)) from None
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        if lines and lines[0].startswith("Weights only load failed") and pickle_globals(path):
            raise WeightsError(f"{path}: refused: the file holds Python objects besides tensors, and weights are "
                               f"only ever read as plain tensors") from None
        detail = next((line for line in lines if "weights_only" not in line and not line.startswith(
            ("Weights only load failed", "Check the documentation"))), type(e).__name__)
        raise WeightsError(f"{path}: cannot read the checkpoint ({detail})") from None


def read_checkpoint(path: "str | os.PathLike") -> Tuple[Dict[str, torch.Tensor], Optional[SegGPTConfig]]:
    """State dict (official key names) and the config if the file stores one, header checks first."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: file not found")
    config = check_weights_file(path)  # a safetensors header and its stored config, before any tensor is read
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except Exception as e:  # noqa: BLE001 - whatever safetensors raises for a damaged file
            raise WeightsError(f"{path}: not a readable safetensors file ({str(e)[:200]})") from None
    else:
        obj = _torch_load(path)
        if isinstance(obj, dict) and isinstance(obj.get("model_config"), dict):  # our training checkpoints
            # tensors alone cannot tell which blocks feed the decoder: never guess for our own files
            config = config_from_mapping(obj["model_config"], str(path))
        # the state dict inside {"model": ...} (official, MAE-style) or {"state_dict": ...}, else the object itself
        obj = next((obj[k] for k in ("model", "state_dict") if isinstance(obj, dict) and isinstance(obj.get(k), dict)),
                   obj)
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise WeightsError(f"{path}: no state dict found (expected a dict of tensors or {{'model': ...}})")
        state = obj
    if is_transformers_state_dict(state):
        state = from_transformers_keys(state)
    return state, config


def check_state(expected: Dict[str, torch.Tensor], state: Dict[str, torch.Tensor], source: str) -> None:
    """WeightsError (one line naming `source`) unless `state` fits the model whose state dict is `expected`:
    exactly its keys and shapes, every tensor floating point and finite (integer or NaN weights would load
    and run, giving masks of nothing)."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))

    def short(keys):
        return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")

    parts = [f"{what} keys: {short(keys)}" for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
    if parts:
        raise WeightsError(f"{source}: checkpoint does not match the model; " + "; ".join(parts))
    bad = [k for k in expected if tuple(expected[k].shape) != tuple(state[k].shape)]
    if bad:
        k = bad[0]
        raise WeightsError(
            f"{source}: shape mismatch for {k}: checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
            + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else "")
        )
    for key, value in state.items():
        if not value.is_floating_point():
            raise WeightsError(f"{source}: tensor {key!r} is {str(value.dtype).replace('torch.', '')}: "
                               f"weights must be floating point")
        if value.numel() and not bool(torch.isfinite(value).all()):
            count = int((~torch.isfinite(value)).sum())
            raise WeightsError(f"{source}: tensor {key!r} holds {count} NaN or infinite value(s) of {value.numel()}")


# ---------------------------------------------------------------------------- the loader


def load_model(
    name_or_path: str,
    device: Optional[Union[str, torch.device]] = None,
    config: Optional[Union[str, SegGPTConfig]] = None,
    model_class: Type[SegGPT] = SegGPT,
) -> SegGPT:
    """What ``SegGPT.from_pretrained`` runs (its docstring says what it accepts and gives); every failure
    is one WeightsError line naming the file. `model_class` is the class built (a subclass's
    from_pretrained builds the subclass)."""
    override = get_config(config) if config is not None else None  # the caller's argument: its own error
    file, beside = resolve(name_or_path)
    state, stored = read_checkpoint(file)
    try:
        model = model_class(override or stored or beside or infer_config(state, str(file)))
    except WeightsError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as e:  # tensors of unexpected form
        raise WeightsError(f"{file}: cannot build the model from this file ({str(e).strip() or type(e).__name__})"
                           ) from None
    check_state(model.state_dict(), state, str(file))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.recommended_settings = recommended_settings(file)
    model.eval()
    if device is not None:
        model.to(device)
    return model


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


__all__ = ["WeightsError", "load_model", "save_state", "read_checkpoint", "check_state", "infer_config",
           "from_transformers_keys", "to_transformers_keys"]
