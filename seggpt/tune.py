"""In-context tuning (SegGPT paper, Sec. 3.3): a learnable prompt, the model frozen.

Instead of an example image, SegGPT is shown a prompt image (and, optionally, prompt mask) that
was optimised so that the model paints a few examples right: a specialist for one class or one
video's objects, at no cost at inference (it is just the prompt). The weights do not change; the
prompt only makes sense for the weights it was tuned with, so a saved prompt records their
sha256 (`weights_sha256`) and refuses other weights with one line.

    python -m seggpt.tune --weights small --example a.jpg a.png --example b.jpg b.png --steps 200 --out p.safetensors
    prompt = TunedPrompt.load("p.safetensors", model)       # refused for other weights
    pred = model.infer(q, prompt.image[None, None].expand(b, ...), prompt.mask[None, None].expand(b, ...))

For video (the engine): tune on the annotated frame(s) with `learn="image"`; the prompt mask then
stays the annotated labels painted as usual, so ``Prompt(frame_idx, prompt.image, prompt.labels)``
is a drop-in permanent prompt for ``vos.engine.memory.PromptMemory``.

The loss and the pairs are the adaptation's (``seggpt.adapt.AdaptSampler``: queries are dreamed
views of the examples, or the other examples), only the top half of each canvas is the learnt
prompt.
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C during the imports below: one line, exit 130
    from seggpt.cli import quiet_start

    quiet_start()

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from .device import autocast
from .errors import InputError, check_input_file
from .io import atomic_path
from .model import SegGPT
from .pairs import RawPair, build_sample
from .cli import ArgumentParser

__all__ = ["TunedPrompt", "tune_prompt", "predict_tuned", "weights_sha256", "main"]

FORMAT_TAG = "seggpt-tuned-prompt-v1"


def weights_sha256(model: SegGPT) -> str:
    """sha256 of the model's weights as fp32 tensors in name order (whatever file or format they came
    from: the same weights give the same digest, a single changed value another)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class TunedPrompt:
    """A prompt at model size: image and mask (3, h, w) ImageNet-normalised, the labels the mask paints
    (h, w) (colour index i = object_ids[i-1]) and the colours that decode the model's answer."""

    image: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor
    colours: np.ndarray
    object_ids: List[int]
    weights_sha256: str
    meta: Dict = field(default_factory=dict)

    def save(self, path: "str | Path") -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT_TAG, "weights_sha256": self.weights_sha256,
                "colours": json.dumps(np.asarray(self.colours).tolist()), "object_ids": json.dumps(self.object_ids),
                "meta": json.dumps(self.meta)}
        with atomic_path(path) as tmp:
            save_file({"image": self.image.detach().float().cpu().contiguous(),
                       "mask": self.mask.detach().float().cpu().contiguous(),
                       "labels": self.labels.detach().long().cpu().contiguous()}, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path: "str | Path", model: Optional[SegGPT] = None) -> "TunedPrompt":
        """Read a saved prompt; with `model`, refuse it unless it was tuned for exactly these weights."""
        from safetensors import safe_open

        check_input_file(path, "tuned prompt")  # a FIFO would block the reader
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as err:  # safetensors raises its own types for a bad header
            raise InputError(f"{path}: not a tuned-prompt safetensors file ({type(err).__name__})") from None
        if meta.get("format") != FORMAT_TAG or not {"image", "mask", "labels"} <= set(tensors):
            raise InputError(f"{path}: not a tuned prompt (format {meta.get('format')!r})")
        prompt = cls(tensors["image"], tensors["mask"], tensors["labels"], np.asarray(json.loads(meta["colours"]), np.uint8),
                     json.loads(meta["object_ids"]), meta["weights_sha256"], json.loads(meta.get("meta", "{}")))
        if model is not None:
            have = weights_sha256(model)
            if have != prompt.weights_sha256:
                raise InputError(f"{path}: tuned for weights sha256 {prompt.weights_sha256[:12]}..., these weights are "
                                 f"{have[:12]}...: tune a prompt for them (python -m seggpt.tune)")
            if tuple(prompt.image.shape[-2:]) != tuple(model.config.image_size):
                raise InputError(f"{path}: prompt is {tuple(prompt.image.shape[-2:])}, the model's images "
                                 f"{tuple(model.config.image_size)}")
        return prompt


def tune_prompt(
    model: SegGPT,
    images: Sequence[np.ndarray],
    label_maps: Sequence[np.ndarray],
    steps: int = 100,
    lr: float = 0.02,
    *,
    learn: str = "image",
    init: int = 0,
    object_ids: Optional[Sequence[int]] = None,
    colors: str = "distinct",
    embedding_type: str = "instance",
    batch_size: int = 8,
    seed: int = 0,
    progress: Optional[Callable[[int, int, float], None]] = None,
    amp_dtype: Optional[torch.dtype] = None,
) -> TunedPrompt:
    """Optimise a prompt (initialised from example `init`) so that the frozen `model` paints the
    examples (and dreamed views of them) right, all objects at once in the engine's joint colours
    (object i of `object_ids` -> colour i+1). learn: "image" or "image+mask". `model` is not
    modified (its requires_grad flags are restored; its weights are never stepped)."""
    from .adapt import AdaptSampler

    if learn not in ("image", "image+mask"):
        raise ValueError(f"learn must be 'image' or 'image+mask', got {learn!r}")
    if not 0 <= init < len(images):
        raise ValueError(f"init must index one of the {len(images)} examples, got {init}")
    start = time.perf_counter()
    h, w = model.config.image_size
    sampler = AdaptSampler(images, label_maps, (h, w), object_ids, "joint", colors, prompt_dream_prob=0.0)
    frame, labels = sampler.pairs.prompts[init]
    img0, tgt0, _ = build_sample([RawPair(frame, labels, frame, labels)], sampler.mapping)
    device = next(model.parameters()).device
    prompt_img = torch.nn.Parameter(torch.from_numpy(img0[:, :h]).to(device))
    prompt_mask = torch.from_numpy(tgt0[:, :h]).to(device)
    if learn == "image+mask":
        prompt_mask = torch.nn.Parameter(prompt_mask)
    opt = torch.optim.Adam([t for t in (prompt_img, prompt_mask) if isinstance(t, torch.nn.Parameter)], lr=lr)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7E5E]))
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    losses: List[float] = []
    try:
        model.requires_grad_(False)
        model.eval()
        for step in range(steps):
            imgs, tgts, valid = (t.to(device) for t in sampler.batch(rng, batch_size))
            # the top half of every canvas is the prompt being learnt
            imgs = torch.cat([prompt_img[None].expand(batch_size, -1, -1, -1), imgs[:, :, h:]], dim=2)
            tgts = torch.cat([prompt_mask[None].expand(batch_size, -1, -1, -1), tgts[:, :, h:]], dim=2)
            with autocast(device, amp_dtype):
                loss, _ = model(imgs, tgts, embedding_type=embedding_type, valid=valid)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(step + 1, steps, losses[-1])
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)
    meta = {"steps": steps, "lr": lr, "learn": learn, "examples": len(images),
            "embedding_type": embedding_type, "seconds": round(time.perf_counter() - start, 2),
            "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
            "config": model.config.to_dict()}
    return TunedPrompt(prompt_img.detach().cpu(), prompt_mask.detach().cpu(), torch.from_numpy(labels.astype(np.int64)),
                       np.asarray(sampler.colours), sampler.object_ids, weights_sha256(model), meta)


@torch.no_grad()
def predict_tuned(predictor, images: Sequence[np.ndarray], prompt: TunedPrompt, embedding_type: str = "instance",
                  batch_size: int = 4) -> list:
    """Segment `images` with a tuned prompt through a ``SegGPTPredictor``: its `Prediction`s, with the
    prompt's object ids (colour index i -> object_ids[i-1]) at each image's size."""
    from .predictor import Prediction

    device = predictor.device
    ids = np.asarray([0] + list(prompt.object_ids), dtype=np.int32)
    found = predictor.predict_encoded(images, prompt.image[None].to(device), prompt.mask[None].to(device),
                                      prompt.colours, embedding_type, batch_size)
    return [Prediction(ids[p.labels], p.distance) for p in found]


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog="python -m seggpt.tune", description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True, metavar="ID|PATH",
                    help="the weights to tune for: small (packaged, offline), BAAI/seggpt-vit-large (official, from "
                         "the Hub), or a file; no default: a tuned prompt only works with the weights it was tuned for")
    ap.add_argument("--example", nargs=2, action="append", required=True, metavar=("IMAGE", "MASK"),
                    help="an example image and its mask (repeat; the first initialises the prompt)")
    ap.add_argument("--out", required=True, help="the tuned prompt, .safetensors")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--learn", choices=("image", "image+mask"), default="image")
    ap.add_argument("--type", dest="embedding_type", choices=("instance", "semantic"), default="instance")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    return ap


def check_arguments(args: argparse.Namespace):
    """The options, checked before any image is read or a model loaded (InputError, one line).

    Returns the claimed --out (`seggpt.outputs.OutputFiles`): an existing file there is replaced only
    when the manifest of its folder proves that a run of ours wrote it, unchanged since.
    """
    from .outputs import check_not_inputs, claim_files
    from .weights_file import weights_input

    for name, value, low in (("--steps", args.steps, 1), ("--batch-size", args.batch_size, 1), ("--seed", args.seed, 0)):
        if value < low:
            raise InputError(f"{name} must be >= {low}, got {value}")
    if not (args.lr > 0 and np.isfinite(args.lr)):
        raise InputError(f"--lr must be a positive number, got {args.lr}")
    inputs = {f"example {kind} {n}": path for n, pair in enumerate(args.example, 1)
              for kind, path in zip(("image", "mask"), pair)}
    inputs["weights"] = weights_input(args.weights)
    check_not_inputs({"--out": args.out}, inputs)
    if Path(args.out).is_dir():
        raise InputError(f"--out {args.out} is a folder; name the .safetensors file to write")
    if Path(args.out).suffix != ".safetensors":
        raise InputError(f"--out {args.out}: a tuned prompt is a .safetensors file")
    return claim_files({"--out": args.out}, "seggpt.tune", register=False)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from .cli import run_cli

    return run_cli(lambda: _tune(args))  # Ctrl-C and SIGTERM: one line, 130 / 143, as every CLI


def _tune(args: argparse.Namespace) -> int:
    """The command's work: tune, save, report (bad input: an InputError, which run_cli reports: one line, exit 2)."""
    from .masks import load_mask
    from .model import SegGPT
    from .io import read_image

    claimed = check_arguments(args)
    images, labels = [], []
    for image_path, mask_path in args.example:
        image = read_image(image_path)
        parsed = load_mask(mask_path)  # an empty mask is refused here (it holds no object: nothing to tune for)
        if parsed.labels.shape != image.shape[:2]:
            raise InputError(f"{mask_path}: mask is {parsed.labels.shape[1]}x{parsed.labels.shape[0]}, "
                             f"its image {image.shape[1]}x{image.shape[0]}")
        images.append(image)
        labels.append(parsed.labels)
    try:
        model = SegGPT.from_pretrained(args.weights, device=args.device)  # the one checked loader
    except OSError as err:
        raise InputError(str(err).splitlines()[0]) from None
    try:
        prompt = tune_prompt(model, images, labels, args.steps, args.lr, learn=args.learn,
                             embedding_type=args.embedding_type, batch_size=args.batch_size, seed=args.seed)
    except ValueError as err:  # the examples' own checks (more objects than the prompt has colours, ...)
        raise InputError(str(err)) from None
    prompt.meta["weights"] = args.weights
    path = prompt.save(args.out)
    claimed.finish(0)  # recorded as ours in the folder's manifest
    print(f"tuned prompt for weights sha256 {prompt.weights_sha256[:12]}... ({args.steps} steps, "
          f"loss {prompt.meta['loss_first']:.4f} -> {prompt.meta['loss_last']:.4f}, {prompt.meta['seconds']} s): {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
