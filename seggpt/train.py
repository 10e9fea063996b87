"""In-context colouring training for SegGPT: ``python -m seggpt.train --config configs/train_small.yaml``.

The official authors never released their training code; this is ours. One run is described by a
flat YAML file of :class:`TrainConfig` keys, overridable on the command line (``steps=2000
lr=1e-4``). The loop: micro-batches from :class:`seggpt.train_data.PairStream` (a loader worker,
so data never waits on the model), the model's own training forward (smooth L1 on the hidden
query half only), AdamW with a cosine schedule after a linear warm-up, gradient accumulation and
clipping, bf16/fp16 autocast on CUDA (fp32 on CPU), checkpoints holding everything needed to
resume bit for bit (model, optimizer, scheduler, scaler, step, RNG states), periodic evaluation on
held-out synthetic data (mIoU of decoded pairs, J&F of short clips through ``vos.metrics``),
``torchrun`` data-parallel, and fine-tuning from anything ``SegGPT.from_pretrained`` reads.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import yaml

from .config import SegGPTConfig, get_config
from .model import SegGPT
from .train_data import (
    Augment, CurriculumStream, FolderPairs, PairStream, SyntheticPairs, TrainDataError, VideoPairs, worker_init,
)

__all__ = ["TrainError", "TrainConfig", "load_config", "Trainer", "main", "evaluate"]


class TrainError(ValueError):
    """A training configuration or checkpoint that cannot be used (one-line message)."""


@dataclass
class TrainConfig:
    """Every setting of a run; YAML keys and command-line overrides use these names."""

    # model
    model: Any = "small"  # a preset name or a dict of SegGPTConfig fields
    init_from: Optional[str] = None  # fine-tune: anything SegGPT.from_pretrained reads
    embedding_type: str = "instance"
    # run
    out_dir: str = "runs/train"
    seed: int = 0
    steps: int = 1000  # optimizer steps
    max_minutes: Optional[float] = None  # stop (and save) after this much wall time
    #: anneal by wall time too: the cosine reaches its end at max_minutes even if `steps` is not reached
    #: (for shared machines whose speed is unknown in advance; not bit-exact on resume)
    time_schedule: bool = False
    threads: Optional[int] = None  # torch intra-op threads (None: torch's default)
    num_workers: int = 1
    device: str = "auto"
    amp: str = "auto"  # auto (bf16 on CUDA if supported, else fp16; fp32 on CPU), bf16 (CPU too), fp16, off
    # optimisation
    batch_size: int = 16  # per micro-batch and rank
    accum_steps: int = 1
    lr: float = 3e-4
    min_lr_ratio: float = 0.01
    warmup_steps: int = 200
    weight_decay: float = 0.05
    betas: Tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    # data
    synthetic_weight: float = 1.0
    synthetic_size: Tuple[int, int] = (80, 144)
    synthetic_objects: Tuple[int, int] = (1, 3)
    synthetic_max_gap: int = 16
    davis_roots: List[str] = field(default_factory=list)
    davis_year: int = 2016
    davis_split: str = "train"
    davis_resolution: str = "480p"
    ytvos_roots: List[str] = field(default_factory=list)
    ytvos_split: str = "train"
    video_weight: float = 1.0
    video_max_gap: int = 10
    folder_roots: List[str] = field(default_factory=list)
    folder_weight: float = 1.0
    # augmentation and colours
    crop_scale: Tuple[float, float] = (0.5, 1.0)
    crop_ratio: Tuple[float, float] = (0.75, 1.333)
    same_crop_prob: float = 0.5
    hflip_prob: float = 0.5
    vflip_prob: float = 0.0
    jitter: float = 0.3
    min_color_distance: float = 80.0
    palette_prob: float = 0.0
    mix_context_prob: float = 0.0
    mix_context_n: int = 2
    #: share of samples whose hidden patches are a random `random_mask_ratio` of the whole mask
    #: canvas instead of the query half (official training mixes both; helps a model from scratch)
    random_mask_prob: float = 0.0
    random_mask_ratio: float = 0.75
    #: small objects' pixels weigh up to this many background pixels in the loss (1: the official plain mean)
    object_weight_max: float = 1.0
    #: data settings that change during the run, e.g. [{at_step: 4000, synthetic_max_gap: 8,
    #: same_crop_prob: 0.5}]: harder pairs once the model has learnt to copy masks at all
    curriculum: List[Dict[str, Any]] = field(default_factory=list)
    # evaluation, logging, checkpoints
    eval_every: int = 500
    eval_pairs: int = 64
    eval_clips: int = 2
    eval_clip_frames: int = 12
    eval_clip_size: Tuple[int, int] = (120, 216)
    eval_seed: int = 987654321
    log_every: int = 10
    ckpt_every: int = 250
    progress: bool = True

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


_TUPLE_KEYS = {f.name for f in dataclasses.fields(TrainConfig) if "Tuple" in str(f.type)}


def _parse_override(text: str, source: str) -> Tuple[str, Any]:
    if "=" not in text:
        raise TrainError(f"{source}: override {text!r} is not key=value")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise TrainError(f"{source}: override {text!r}: value is not YAML ({str(err).splitlines()[0]})") from None


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML file of TrainConfig keys and apply ``key=value`` overrides (values parsed as YAML)."""
    values: Dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise TrainError(f"{p}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise TrainError(f"{p}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise TrainError(f"{p}: the top level must be a mapping of settings")
        values.update(loaded)
    for text in overrides:
        key, value = _parse_override(text, "command line")
        values[key] = value
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    source = path or "command line"
    for key in values:
        if key not in known:
            raise TrainError(f"{source}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    for key in _TUPLE_KEYS & set(values):
        v = values[key]
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise TrainError(f"{source}: {key} must be a list of two numbers, got {v!r}")
        values[key] = tuple(v)
    for key in ("davis_roots", "ytvos_roots", "folder_roots"):
        if key in values:
            v = values[key] or []
            values[key] = [str(x) for x in (v if isinstance(v, list) else [v])]
    for f in dataclasses.fields(TrainConfig):
        v = values.get(f.name)
        if isinstance(v, str) and ("float" in str(f.type) or f.type in ("int", "Optional[int]")):
            try:  # YAML reads "1e-3" as a string (its floats need a dot): accept what Python accepts
                values[f.name] = float(v) if "float" in str(f.type) else int(v)
            except ValueError:
                raise TrainError(f"{source}: {f.name} must be a number, got {v!r}") from None
    if values.get("amp") is False:  # YAML 1.1 reads a bare `off` as false
        values["amp"] = "off"
    if "curriculum" in values:
        values["curriculum"] = _check_curriculum(values["curriculum"], source)
    cfg = TrainConfig(**values)
    if cfg.amp not in ("auto", "bf16", "fp16", "off"):
        raise TrainError(f"{source}: amp must be auto, bf16, fp16 or off, got {cfg.amp!r}")
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.accum_steps < 1:
        raise TrainError(f"{source}: steps, batch_size and accum_steps must be >= 1")
    if cfg.embedding_type not in ("instance", "semantic"):
        raise TrainError(f"{source}: embedding_type must be instance or semantic, got {cfg.embedding_type!r}")
    return cfg


#: the settings a curriculum stage may change: what the pairs are, never the model or the optimiser
CURRICULUM_KEYS = frozenset({
    "synthetic_weight", "synthetic_objects", "synthetic_max_gap", "video_weight", "video_max_gap",
    "folder_weight", "crop_scale", "crop_ratio", "same_crop_prob", "hflip_prob", "vflip_prob", "jitter",
    "min_color_distance", "palette_prob", "mix_context_prob", "random_mask_prob", "object_weight_max",
})


def _check_curriculum(stages: Any, source: str) -> List[Dict[str, Any]]:
    """Validate curriculum stages: a list of mappings, each with an increasing `at_step` and data keys."""
    if not stages:
        return []
    if not isinstance(stages, list) or not all(isinstance(st, dict) for st in stages):
        raise TrainError(f"{source}: curriculum must be a list of mappings, each with at_step")
    checked, last = [], 0
    for stage in stages:
        at = stage.get("at_step")
        if not isinstance(at, int) or at <= last:
            raise TrainError(f"{source}: curriculum at_step must be increasing integers > 0, got {at!r}")
        unknown = set(stage) - CURRICULUM_KEYS - {"at_step"}
        if unknown:
            raise TrainError(f"{source}: curriculum cannot change {', '.join(sorted(unknown))} "
                             f"(only {', '.join(sorted(CURRICULUM_KEYS))})")
        stage = dict(stage)
        for key in _TUPLE_KEYS & set(stage):
            stage[key] = tuple(stage[key])
        checked.append(stage)
        last = at
    return checked


def data_config(cfg: TrainConfig, step: int) -> TrainConfig:
    """The run's settings with every curriculum stage reached by optimizer step `step` applied."""
    changes: Dict[str, Any] = {}
    for stage in cfg.curriculum:
        if step >= stage["at_step"]:
            changes.update({k: v for k, v in stage.items() if k != "at_step"})
    return dataclasses.replace(cfg, **changes) if changes else cfg


# ----------------------------------------------------------------------------- pieces


def build_model(cfg: TrainConfig) -> SegGPT:
    """A fresh model of the configured size, or the checkpoint named by `init_from` (fine-tuning)."""
    if cfg.init_from:
        from .weights import WeightsError

        try:
            return SegGPT.from_pretrained(str(cfg.init_from)).train()  # a last.pt's stored config included
        except WeightsError as err:
            raise TrainError(f"init_from: {err}") from None
    try:
        model_cfg = get_config(dict(cfg.model) if isinstance(cfg.model, dict) else cfg.model)
    except (ValueError, TypeError) as err:
        raise TrainError(f"model: {err}") from None
    model = SegGPT(model_cfg)
    model.reset_parameters(seed=cfg.seed)
    return model


def build_stream(cfg: TrainConfig, model_cfg: SegGPTConfig, rank: int = 0,
                 start: int = 0) -> "PairStream | CurriculumStream":
    """The run's micro-batch stream from micro-step `start`; with a curriculum, one stream per stage."""
    if not cfg.curriculum:
        return _pair_stream(cfg, model_cfg, rank, start, {})
    firsts = [0] + [stage["at_step"] * cfg.accum_steps for stage in cfg.curriculum]
    scanned: Dict[Any, Any] = {}  # dataset indexes, read once for all stages
    stages = [_pair_stream(data_config(cfg, first // cfg.accum_steps), model_cfg, rank, start, scanned)
              for first in firsts]
    return CurriculumStream(list(zip(firsts, stages)), start)


def _pair_stream(cfg: TrainConfig, model_cfg: SegGPTConfig, rank: int, start: int,
                 scanned: Dict[Any, Any]) -> PairStream:
    """One stage's stream; `scanned` keeps the folder/video indexes that earlier stages already read."""
    def videos(key, make) -> VideoPairs:
        if key not in scanned:
            scanned[key] = make()
        return scanned[key].with_max_gap(cfg.video_max_gap)

    sources, weights = [], []
    try:
        if cfg.synthetic_weight > 0:
            sources.append(SyntheticPairs(cfg.synthetic_size, cfg.synthetic_objects, cfg.synthetic_max_gap))
            weights.append(cfg.synthetic_weight)
        if cfg.davis_roots and cfg.video_weight > 0:
            sources.append(videos("davis", lambda: VideoPairs(cfg.davis_roots, "davis", cfg.davis_split,
                                                              cfg.davis_year, cfg.davis_resolution)))
            weights.append(cfg.video_weight)
        if cfg.ytvos_roots and cfg.video_weight > 0:
            sources.append(videos("ytvos", lambda: VideoPairs(cfg.ytvos_roots, "ytvos", cfg.ytvos_split)))
            weights.append(cfg.video_weight)
        if cfg.folder_roots and cfg.folder_weight > 0:
            if "folders" not in scanned:
                scanned["folders"] = FolderPairs(cfg.folder_roots)
            sources.append(scanned["folders"])
            weights.append(cfg.folder_weight)
        augment = Augment(model_cfg.image_size, cfg.crop_scale, cfg.crop_ratio, cfg.same_crop_prob,
                          cfg.hflip_prob, cfg.vflip_prob, cfg.jitter)
        return PairStream(sources, weights, augment, cfg.batch_size, cfg.seed, rank, start,
                          cfg.min_color_distance, cfg.palette_prob, cfg.mix_context_prob, cfg.mix_context_n,
                          model_cfg.patch_size, cfg.random_mask_prob, cfg.random_mask_ratio,
                          cfg.object_weight_max)
    except TrainDataError as err:
        raise TrainError(str(err)) from None


def lr_factor(step: int, warmup: int, total: int, min_ratio: float, time_fraction: float = 0.0) -> float:
    """Linear warm-up to 1, then cosine decay to `min_ratio` at `total` optimizer steps.

    `time_fraction` (elapsed / allowed wall time) moves the decay on when the machine is slower
    than `total` assumed, so that a run stopped by its time limit still ends annealed.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), time_fraction))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# ----------------------------------------------------------------------------- evaluation


def _eval_data(cfg: TrainConfig, model_cfg: SegGPTConfig):
    """Held-out synthetic pairs and clips from `eval_seed` (training draws its scenes elsewhere)."""
    from vos.synthetic import make_clip, make_pair

    rng = np.random.default_rng(np.random.SeedSequence([cfg.eval_seed, 1]))
    pairs = [make_pair(rng, tuple(cfg.synthetic_size), num_objects=int(rng.integers(1, 4)),
                       max_gap=cfg.synthetic_max_gap) for _ in range(cfg.eval_pairs)]
    clips = [make_clip(int(np.random.SeedSequence([cfg.eval_seed, 2, i]).generate_state(1)[0]),
                       cfg.eval_clip_frames, tuple(cfg.eval_clip_size), num_objects=2 + i % 2)
             for i in range(cfg.eval_clips)]
    return pairs, clips


@torch.no_grad()
def evaluate(model: SegGPT, pairs, clips) -> Dict[str, float]:
    """mIoU of decoded held-out pairs (per object, palette colours as at inference) and clip J&F.

    Clips are propagated as the engine does in its simplest form: every frame is predicted from
    two prompts, the first frame with its true mask and the previous frame with its prediction.
    """
    from vos.metrics import evaluate_sequence

    from .predictor import SegGPTPredictor

    was_training = model.training
    predictor = SegGPTPredictor(model)
    out: Dict[str, float] = {}
    try:
        if pairs:
            ious = []
            for p, pl, q, ql in pairs:
                n = int(max(pl.max(), ql.max(), 1))
                pred = predictor.predict([q], [p], [pl], num_labels=n)[0].labels
                for obj in np.unique(pl):
                    if obj == 0:
                        continue
                    inter = np.count_nonzero((pred == obj) & (ql == obj))
                    union = np.count_nonzero((pred == obj) | (ql == obj))
                    ious.append(1.0 if union == 0 else inter / union)
            out["miou"] = float(np.mean(ious)) if ious else float("nan")
        if clips:
            js, fs = [], []
            for frames, labels in clips:
                n = int(labels[0].max())
                preds = [labels[0]]
                for t in range(1, len(frames)):
                    prompts, prompt_labels = [frames[0]], [labels[0]]
                    if t > 1:
                        prompts.append(frames[t - 1])
                        prompt_labels.append(preds[-1])
                    preds.append(predictor.predict([frames[t]], prompts, prompt_labels, num_labels=n)[0].labels)
                scores = evaluate_sequence(labels, np.stack(preds).astype(np.uint8), list(range(1, n + 1)))
                for s in scores.values():
                    js.append(float(np.mean(s["J"])))
                    fs.append(float(np.mean(s["F"])))
            out["J"], out["F"] = float(np.mean(js)), float(np.mean(fs))
            out["JF"] = (out["J"] + out["F"]) / 2
    finally:
        model.train(was_training)
    return out


# ----------------------------------------------------------------------------- the trainer


class Trainer:
    """One training run: builds everything from a TrainConfig, `run()` trains, evaluates, saves."""

    def __init__(self, cfg: TrainConfig, resume: Optional[str] = None):
        self.cfg = cfg
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        self.device = self._device()
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        torch.manual_seed(cfg.seed + self.rank)
        self.model = build_model(cfg).to(self.device)
        self.model.train()
        self.ddp = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2 and "token" not in n and "pos_embed" not in n]
        no_decay = [p for n, p in self.model.named_parameters() if not (p.ndim >= 2 and "token" not in n and "pos_embed" not in n)]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, betas=tuple(cfg.betas),
        )
        self.elapsed_before = 0.0  # wall time of earlier segments of a resumed run
        self._run_start: Optional[float] = None
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio, self._time_fraction()))
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self.best: Optional[float] = None
        self.out_dir = Path(cfg.out_dir)
        self.losses: List[float] = []
        if resume:
            self.load_checkpoint(self._resume_path(resume))

    # ---------------------------------------------------------------- setup helpers
    def _device(self) -> torch.device:
        if self.cfg.device != "auto":
            return torch.device(self.cfg.device)
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def _amp_dtype(self) -> Optional[torch.dtype]:
        if self.device.type != "cuda":  # CPUs with bf16 units (AVX512-BF16, AMX) gain ~1.3x from it
            return torch.bfloat16 if self.cfg.amp == "bf16" else None
        if self.cfg.amp == "off":
            return None
        if self.cfg.amp == "fp16":
            return torch.float16
        if self.cfg.amp == "bf16" or torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16

    def _resume_path(self, resume: str) -> Path:
        path = self.out_dir / "last.pt" if resume == "auto" else Path(resume)
        if not path.is_file():
            raise TrainError(f"{path}: checkpoint to resume from not found")
        return path

    def _elapsed(self) -> float:
        return self.elapsed_before + (time.time() - self._run_start if self._run_start is not None else 0.0)

    def _time_fraction(self) -> float:
        if not self.cfg.time_schedule or not self.cfg.max_minutes or self._run_start is None:
            return 0.0
        return self._elapsed() / (60.0 * self.cfg.max_minutes)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---------------------------------------------------------------- checkpoints
    def state(self) -> Dict[str, Any]:
        # numpy's state as tensors, so the file loads with weights_only=True (and as init_from)
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        rng = {"torch": torch.get_rng_state(), "python": random.getstate(),
               "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                         "has_gauss": int(has_gauss), "cached": float(cached)}}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "model_config": self.model.config.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "best": self.best,
            "elapsed": self._elapsed(),
            "rng": rng,
            "train_config": self.cfg.to_dict(),
        }

    def save_checkpoint(self) -> Path:
        path = self.out_dir / "last.pt"
        _atomic_torch_save(self.state(), path)
        return path

    def load_checkpoint(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model_cfg = SegGPTConfig.from_dict(state["model_config"])
        except Exception as err:  # unreadable file, foreign pickle, missing keys
            raise TrainError(f"{path}: not a training checkpoint ({type(err).__name__}: {str(err)[:150]})") from None
        if model_cfg != self.model.config:
            raise TrainError(f"{path}: checkpoint model config differs from this run's model")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best = state.get("best")
        self.elapsed_before = float(state.get("elapsed", 0.0))
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        npr = rng["numpy"]
        np.random.set_state((npr["kind"], npr["keys"].numpy().astype(np.uint32), npr["pos"], npr["has_gauss"],
                             npr["cached"]))
        random.setstate(rng["python"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    # ---------------------------------------------------------------- logging
    def _log(self, record: Dict[str, Any]) -> None:
        if not self.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "log.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")

    # ---------------------------------------------------------------- training
    def _loader(self):
        stream = build_stream(self.cfg, self.model.config, self.rank, self.step * self.cfg.accum_steps)
        workers = max(0, int(self.cfg.num_workers))
        return iter(torch.utils.data.DataLoader(
            stream, batch_size=None, num_workers=workers, worker_init_fn=worker_init if workers else None,
            prefetch_factor=4 if workers else None, persistent_workers=False,
        ))

    def train_step(self, batches: Sequence[Dict[str, torch.Tensor]]) -> float:
        """One optimizer step over `accum_steps` micro-batches; returns the mean loss."""
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for i, batch in enumerate(batches):
            imgs, tgts, valid, mask = (batch[k].to(self.device, non_blocking=True)
                                       for k in ("imgs", "tgts", "valid", "mask"))
            sync = i == len(batches) - 1 or self.world == 1
            ctx = self.ddp.no_sync() if (self.world > 1 and not sync) else _null()
            with ctx:
                autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype)
                            if self.amp_dtype is not None else _null())
                with autocast:
                    loss, _ = self.ddp(imgs, tgts, mask, self.cfg.embedding_type, valid)
                self.scaler.scale(loss / len(batches)).backward()
            total += float(loss.detach())
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return total / len(batches)

    def _evaluate(self, eval_data) -> Dict[str, float]:
        scores = evaluate(self.model, *eval_data)
        metric = scores.get("JF", scores.get("miou"))
        record = {"step": self.step, "time": time.time(), **scores}
        if metric is not None and not math.isnan(metric) and (self.best is None or metric > self.best):
            self.best = metric
            self.model.save_pretrained(self.out_dir / "best.safetensors")
            record["best"] = True
        self._log({"eval": record})
        return scores

    def run(self, until: Optional[int] = None) -> Dict[str, Any]:
        """Train to `steps` (or `max_minutes`); returns the losses of this call and the last evaluation.

        `until` pauses at that step instead: a checkpoint is written and the run can go on later
        with ``resume`` exactly as if it had never stopped (the schedule still spans `steps`).
        """
        cfg = self.cfg
        self.losses = []
        self._run_start = time.time()
        loader = self._loader()
        eval_data = _eval_data(cfg, self.model.config) if self.is_main and cfg.eval_every > 0 else None
        bar = None
        if self.is_main and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=self.step, dynamic_ncols=True, mininterval=5.0)
        if self.is_main:
            self._log({"start": {"step": self.step, "params": self.model.num_parameters(),
                                 "model": self.model.config.to_dict(), "config": cfg.to_dict(),
                                 "world": self.world, "device": str(self.device)}})
        scores: Dict[str, float] = {}
        stopped_early = False
        stop = cfg.steps if until is None else min(int(until), cfg.steps)
        stage_starts = {stage["at_step"]: stage for stage in cfg.curriculum}
        while self.step < stop:
            if self.is_main and self.step in stage_starts:
                self._log({"curriculum": stage_starts[self.step]})
            batches = [next(loader) for _ in range(cfg.accum_steps)]
            loss = self.train_step(batches)
            self.losses.append(loss)
            if not math.isfinite(loss):
                raise TrainError(f"step {self.step}: loss is {loss}; lower lr or check the data")
            if self.is_main and (self.step % cfg.log_every == 0 or self.step == 1):
                self._log({"step": self.step, "loss": loss, "lr": self.scheduler.get_last_lr()[0],
                           "elapsed": self._elapsed()})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            out_of_time = cfg.max_minutes is not None and self._elapsed() > 60 * cfg.max_minutes
            if self.is_main and eval_data is not None and (self.step % cfg.eval_every == 0 or out_of_time):
                scores = self._evaluate(eval_data)
                if bar is not None:
                    bar.write(f"step {self.step}: " + " ".join(f"{k}={v:.3f}" for k, v in scores.items()))
            if self.is_main and cfg.ckpt_every > 0 and (self.step % cfg.ckpt_every == 0 or out_of_time):
                self.save_checkpoint()
            if out_of_time:
                stopped_early = True
                break
        if bar is not None:
            bar.close()
        if self.is_main and self.step < cfg.steps and not stopped_early:  # paused by `until`
            self.save_checkpoint()
        elif self.is_main:
            if eval_data is not None and not stopped_early and self.step % cfg.eval_every:
                scores = self._evaluate(eval_data)
            if cfg.ckpt_every > 0:
                self.save_checkpoint()
            self.model.save_pretrained(self.out_dir / "final.safetensors")
            self._log({"end": {"step": self.step, "elapsed": self._elapsed(), "best": self.best}})
        return {"step": self.step, "losses": self.losses, "scores": scores, "best": self.best}


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# ----------------------------------------------------------------------------- CLI


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seggpt.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML file of training settings (see TrainConfig)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="resume from a checkpoint (default: <out_dir>/last.pt)")
    parser.add_argument("overrides", nargs="*", help="key=value settings that override the file")
    args = parser.parse_args(argv)
    if args.resume is not None and "=" in args.resume and not Path(args.resume).exists():
        # "--resume key=value": the optional value swallowed an override
        args.overrides.insert(0, args.resume)
        args.resume = "auto"
    try:
        cfg = load_config(args.config, args.overrides)
        result = Trainer(cfg, resume=args.resume).run()
    except (TrainError, TrainDataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"step": result["step"], "best": result["best"], "scores": result["scores"],
                          "out_dir": cfg.out_dir}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
