"""In-context colouring training for SegGPT: the training loop, its checkpoints and evaluation.

The official authors never released their training code; this is ours. The loop: micro-batches
from :class:`training.data.PairStream` (a loader worker, so data never waits on the model), the
model's own training forward (smooth L1 on the hidden query half only), AdamW with a cosine
schedule after a linear warm-up, gradient accumulation and clipping, bf16/fp16 autocast on CUDA
(fp32 on CPU), checkpoints holding everything needed to resume bit for bit (model, optimizer,
scheduler, scaler, step, RNG states), periodic evaluation on held-out synthetic data (``training.evaluation``: mIoU of
decoded pairs; J&F of short clips segmented by the shipped engine, ``vos.VideoSegmenter``, scored by
``vos.data.metrics``), ``torchrun`` data-parallel, and fine-tuning from anything ``SegGPT.from_pretrained``
reads. The command line: ``python -m training``.

The output folder holds one run: `last.pt` (the checkpoint), `final.safetensors`, `best.safetensors`
and `log.jsonl` (:data:`RUN_FILES`), with the manifest of `seggpt.outputs`. A folder that already
holds a run's files is refused unless the run resumes it or `overwrite` removes those files (only
those); a folder holding anything else is refused. Ctrl-C or SIGTERM (raised as
KeyboardInterrupt by ``seggpt.cli.run_cli``) ends a run after a whole checkpoint is written; the
optimizer update itself is never cut in half (signals wait until it is done).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from seggpt.config import SegGPTConfig, get_config
from seggpt.device import autocast, resolve_device
from seggpt.adapt import lr_factor
from seggpt.errors import InputError, WeightsError
from seggpt.io import atomic_path
from seggpt.model import SegGPT

from .config import TrainConfig, data_config
from .data import CurriculumStream, FlowPairs, FolderPairs, PairStream, SyntheticPairs, VideoPairs, worker_init
from .evaluation import eval_data, evaluate

__all__ = ["Trainer", "build_model", "build_stream", "lr_factor", "evaluate", "claim_out_dir", "signals_held",
           "RUN_FILES"]

#: the files a run writes in its out_dir; `overwrite` removes these and nothing else
RUN_FILES = ("last.pt", "best.safetensors", "final.safetensors", "log.jsonl")


# ----------------------------------------------------------------------------- pieces


def build_model(cfg: TrainConfig) -> SegGPT:
    """A fresh model of the configured size, or the checkpoint named by `init_from` (fine-tuning)."""
    if cfg.init_from:
        try:
            # the one checked loader (a last.pt's stored config included)
            return SegGPT.from_pretrained(str(cfg.init_from)).train()
        except WeightsError as err:
            raise InputError(f"init_from: {err}") from None
    model = SegGPT(get_config(cfg.model))  # TrainConfig has checked the model setting (training.config._model)
    model.reset_parameters(seed=cfg.seed)
    return model


def build_stream(cfg: TrainConfig, model_cfg: SegGPTConfig, rank: int = 0,
                 start: int = 0) -> "PairStream | CurriculumStream":
    """The run's micro-batch stream from micro-step `start`; with a curriculum, one stream per stage."""
    if not cfg.curriculum:
        return _pair_stream(cfg, model_cfg, rank, start, {})
    firsts = [0] + [stage.at_step * cfg.accum_steps for stage in cfg.curriculum]
    scanned: Dict[Any, Any] = {}  # dataset indexes, read once for all stages
    stages = [_pair_stream(data_config(cfg, first // cfg.accum_steps), model_cfg, rank, start, scanned)
              for first in firsts]
    return CurriculumStream(list(zip(firsts, stages)), start)


def _pair_stream(cfg: TrainConfig, model_cfg: SegGPTConfig, rank: int, start: int,
                 scanned: Dict[Any, Any]) -> PairStream:
    """One stage's stream; `scanned` keeps the folder/video indexes that earlier stages already read."""
    def cached(key, make):
        if key not in scanned:
            scanned[key] = make()
        return scanned[key]

    def davis() -> VideoPairs:
        return cached("davis", lambda: VideoPairs(cfg.davis_roots, "davis", cfg.davis_split, cfg.davis_year,
                                                  cfg.davis_resolution)).with_max_gap(cfg.video_max_gap)

    def ytvos() -> VideoPairs:
        return cached("ytvos", lambda: VideoPairs(cfg.ytvos_roots, "ytvos", cfg.ytvos_split)
                      ).with_max_gap(cfg.video_max_gap)

    def flow() -> FlowPairs:
        if not (cfg.davis_roots or cfg.ytvos_roots):
            raise InputError("flow_weight > 0 needs videos: give davis_roots or ytvos_roots")
        # the frames of the videos scanned above, read once for all stages
        return cached("flow", lambda: FlowPairs((davis().all_frames if cfg.davis_roots else [])
                                                + (ytvos().all_frames if cfg.ytvos_roots else []),
                                                cfg.flow_max_gap, cfg.flow_objects)).with_max_gap(cfg.flow_max_gap)

    def folders() -> FolderPairs:
        return cached("folders", lambda: FolderPairs(cfg.folder_roots))

    # (weight, source) in this order; a source without roots or weight is left out (and never read)
    candidates = [(cfg.synthetic_weight, lambda: SyntheticPairs(cfg.synthetic_size, cfg.synthetic_objects,
                                                                 cfg.synthetic_max_gap)),
                  (cfg.video_weight if cfg.davis_roots else 0, davis), (cfg.video_weight if cfg.ytvos_roots else 0, ytvos),
                  (cfg.flow_weight, flow), (cfg.folder_weight if cfg.folder_roots else 0, folders)]
    weights = [weight for weight, _ in candidates if weight > 0]
    sources = [make() for weight, make in candidates if weight > 0]
    return PairStream(sources, weights, cfg.augment(model_cfg.image_size), cfg.batch_size,
                      settings=cfg.pair_settings(), seed=cfg.seed, rank=rank, start=start,
                      patch_size=model_cfg.patch_size)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done, then act as they would have (main thread only;
    elsewhere, where no signal handler runs, a no-op). For what must not be cut in half."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: List[int] = []
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not None:  # None: a handler set outside Python, which cannot be put back
            previous[signum] = signal.signal(signum, lambda n, _frame: held.append(n))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            signal.raise_signal(held[0])  # now, through the handler the block had held back


def claim_out_dir(out_dir: Path, resume: bool, overwrite: bool, inputs: Sequence[Optional[str]] = (),
                  data_roots: Sequence[str] = ()) -> None:
    """Make sure `out_dir` can take this run: a usable folder that holds no other run's files.

    A folder holding RUN_FILES is another run (or this one, interrupted): it is continued with
    `resume`, or emptied of those files with `overwrite`; otherwise refused. A folder holding any file
    that is not ours (`seggpt.outputs`: a user's, or one of ours changed since) is refused whatever
    the flags say. An input (`init_from`) that `overwrite` would remove is refused too, and so is
    an out_dir that is, lies inside, or holds a data root (checked before anything is created).
    """
    from seggpt.outputs import claim_folder, is_within, real

    for root in data_roots:
        if is_within(real(out_dir), real(root)):
            raise InputError(f"out_dir {out_dir} is inside the data root {root}: a run never writes into its data; "
                             "choose another out_dir")
        if is_within(real(root), real(out_dir)):
            raise InputError(f"out_dir {out_dir} holds the data root {root}; choose another out_dir")

    found = [name for name in RUN_FILES if (out_dir / name).exists()]
    if found and not resume and not overwrite:
        raise InputError(f"out_dir {out_dir}: holds another run ({', '.join(found)}); continue it with "
                         f"--resume, or replace it with --overwrite")
    if overwrite and found:
        doomed = {os.path.realpath(out_dir / name) for name in found}
        for item in inputs:
            if item and os.path.realpath(item) in doomed:
                raise InputError(f"init_from {item}: --overwrite would remove it (it is this out_dir's run); "
                                 f"copy it elsewhere first")
    # the folder holds nothing but this run (seggpt.outputs): a user's file there is never touched,
    # the run is refused instead; the manifest is finished when the command ends
    # (made, and writable: the claim writes the folder's manifest)
    return claim_folder(out_dir, "training", overwrite=overwrite, resume=resume, patterns=list(RUN_FILES),
                        option="out_dir", legacy_names=RUN_FILES)


# ----------------------------------------------------------------------------- the trainer


class Trainer:
    """One training run: builds everything from a TrainConfig, `run()` trains, evaluates, saves.

    resume: a checkpoint to go on from ("auto": out_dir/last.pt). overwrite: an out_dir holding
    another run's files (RUN_FILES) is emptied of them; without it (or resume) it is refused.
    """

    def __init__(self, cfg: TrainConfig, resume: Optional[str] = None, overwrite: bool = False):
        self.cfg = cfg
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.out_dir = Path(cfg.out_dir)
        if resume and overwrite:
            raise InputError("--resume and --overwrite: choose one (go on with the run in out_dir, or replace it)")
        resume_path = None
        if resume:
            resume_path = self.out_dir / "last.pt" if resume == "auto" else Path(resume)
        if resume_path is not None and not resume_path.is_file():
            raise InputError(f"{resume_path}: checkpoint to resume from not found")
        if self.rank == 0:  # before anything slow: a refused folder costs nothing
            claim_out_dir(self.out_dir, bool(resume), overwrite, [cfg.init_from],
                          [*cfg.davis_roots, *cfg.ytvos_roots, *cfg.folder_roots])
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        self.device = self._device()
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        torch.manual_seed(cfg.seed + self.rank)
        self.model = build_model(cfg).to(self.device)  # in training mode
        self.ddp = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        decay, no_decay = [], []  # matrices decay; biases, norms, tokens and position embeddings do not
        for n, p in self.model.named_parameters():
            (decay if p.ndim >= 2 and "token" not in n and "pos_embed" not in n else no_decay).append(p)
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
        self.losses: List[float] = []
        #: the checkpoint written when the last run() was interrupted (Ctrl-C, SIGTERM), else None
        self.interrupted_checkpoint: Optional[Path] = None
        if resume_path is not None:
            self.load_checkpoint(resume_path)

    # ---------------------------------------------------------------- setup helpers
    def _device(self) -> torch.device:
        """The one resolver's device; `auto` or `cuda` under torchrun: this rank's GPU."""
        try:
            device = resolve_device(self.cfg.device)
        except InputError as err:
            raise InputError(f"device: {err}") from None
        if device.type == "cuda":
            if device.index is None:
                device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        return device

    def _amp_dtype(self) -> Optional[torch.dtype]:
        amp = self.cfg.amp
        # off the GPU bf16 only when asked: CPUs with bf16 units (AVX512-BF16, AMX) gain ~1.3x from it
        if self.device.type != "cuda" or amp == "off":
            return torch.bfloat16 if amp == "bf16" else None
        if amp == "auto":
            amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return torch.bfloat16 if amp == "bf16" else torch.float16

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
            **{name: getattr(self, name).state_dict() for name in ("optimizer", "scheduler", "scaler")},
            "step": self.step,
            "best": self.best,
            "elapsed": self._elapsed(),
            "rng": rng,
            "train_config": self.cfg.to_dict(),
        }

    def save_checkpoint(self) -> Path:
        path = self.out_dir / "last.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, fsync=True) as tmp:  # a checkpoint must survive a power cut whole or not at all
            torch.save(self.state(), tmp)
        return path

    def load_checkpoint(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model_cfg = SegGPTConfig.from_dict(state["model_config"])
        except Exception as err:  # unreadable file, foreign pickle, missing keys
            raise InputError(f"{path}: not a training checkpoint ({type(err).__name__}: {str(err)[:150]})") from None
        if model_cfg != self.model.config:
            raise InputError(f"{path}: checkpoint model config differs from this run's model")
        self.model.load_state_dict(state["model"])
        for name in ("optimizer", "scheduler", "scaler"):
            getattr(self, name).load_state_dict(state[name])
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
            # gradients are all-reduced on the last micro-batch only
            ctx = self.ddp.no_sync() if self.world > 1 and i < len(batches) - 1 else contextlib.nullcontext()
            with ctx:
                with autocast(self.device, self.amp_dtype):
                    loss, _ = self.ddp(imgs, tgts, mask, self.cfg.embedding_type, valid)
                self.scaler.scale(loss / len(batches)).backward()
            total += float(loss.detach())
        with signals_held():  # the update is whole or not done: a checkpoint after Ctrl-C is a real step
            if self.cfg.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            self.step += 1
        return total / len(batches)

    def _evaluate(self, held_out) -> Dict[str, float]:
        scores = evaluate(self.model, *held_out, device=self.device)
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
        At the end the checkpoint and `final.safetensors` are written before the final evaluation,
        so a failing evaluation never costs the run. Interrupted (KeyboardInterrupt, which
        ``seggpt.cli`` raises for SIGTERM too), a whole checkpoint is written and the interrupt goes on.
        """
        cfg = self.cfg
        self.losses = []
        self.interrupted_checkpoint = None
        self._run_start = time.time()
        bar = None
        try:
            loader = self._loader()
            held_out = eval_data(cfg) if self.is_main and cfg.eval_every > 0 else None
            if self.is_main and cfg.progress:
                bar = tqdm(total=cfg.steps, initial=self.step, dynamic_ncols=True, mininterval=5.0)
            self._log({"start": {"step": self.step, "params": self.model.num_parameters(),
                                 "model": self.model.config.to_dict(), "config": cfg.to_dict(),
                                 "world": self.world, "device": str(self.device)}})  # (the main process logs)
            return self._train(loader, held_out, bar, until)
        except KeyboardInterrupt:
            if self.is_main:
                with signals_held():  # a second Ctrl-C waits for the checkpoint
                    self.interrupted_checkpoint = self.save_checkpoint()
                    self._log({"interrupted": {"step": self.step, "elapsed": self._elapsed()}})
            raise
        finally:
            if bar is not None:
                bar.close()

    def _train(self, loader, held_out, bar, until: Optional[int]) -> Dict[str, Any]:
        cfg = self.cfg
        scores: Dict[str, float] = {}
        stopped_early = False
        stop = cfg.steps if until is None else min(int(until), cfg.steps)
        stage_starts = {stage.at_step: stage for stage in cfg.curriculum}
        while self.step < stop:
            if self.step in stage_starts:  # (logged by the main process)
                self._log({"curriculum": {"at_step": self.step, **stage_starts[self.step].changes()}})
            loss = self.train_step([next(loader) for _ in range(cfg.accum_steps)])
            self.losses.append(loss)
            if not math.isfinite(loss):
                raise InputError(f"step {self.step}: loss is {loss}; lower lr or check the data")
            if self.is_main and (self.step % cfg.log_every == 0 or self.step == 1):
                self._log({"step": self.step, "loss": loss, "lr": self.scheduler.get_last_lr()[0],
                           "elapsed": self._elapsed()})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            if cfg.max_minutes is not None and self._elapsed() > 60 * cfg.max_minutes:
                stopped_early = True  # saved and evaluated below, as at the end
                break
            if self.is_main and held_out is not None and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                scores = self._evaluate(held_out)
                if bar is not None:
                    bar.write(f"step {self.step}: " + " ".join(f"{k}={v:.3f}" for k, v in scores.items()))
            if self.is_main and cfg.ckpt_every > 0 and self.step % cfg.ckpt_every == 0 and self.step < stop:
                self.save_checkpoint()
        result = {"step": self.step, "losses": self.losses, "scores": scores, "best": self.best}
        if not self.is_main:
            return result
        if self.step < cfg.steps and not stopped_early:  # paused by `until`
            self.save_checkpoint()
            return result
        # the end (all steps, or out of time): the run's files first, then the final evaluation
        if cfg.ckpt_every > 0 or stopped_early:
            self.save_checkpoint()
        self.model.save_pretrained(self.out_dir / "final.safetensors")
        if held_out is not None:
            best_before = self.best
            scores = self._evaluate(held_out)
            if self.best != best_before and (cfg.ckpt_every > 0 or stopped_early):
                self.save_checkpoint()  # the checkpoint knows the new best, for a resumed run's comparisons
        self._log({"end": {"step": self.step, "elapsed": self._elapsed(), "best": self.best}})
        return {**result, "scores": scores, "best": self.best}
