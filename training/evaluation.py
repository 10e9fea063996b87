"""Evaluation during training: held-out synthetic pairs (mIoU) and clips segmented by the shipped engine (J&F).

The trainer evaluates every `eval_every` steps and at the end; what it measures is what a user gets:
pairs decoded by ``SegGPTPredictor`` with the inference palette, clips run through ``vos.VideoSegmenter``
and scored by ``vos.data.metrics`` (the DAVIS rules). The held-out data comes from `eval_seed`, apart from
the scenes training draws.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from seggpt.model import SegGPT
from seggpt.predictor import SegGPTPredictor
from vos.engine.config import EngineConfig
from vos.engine.segmenter import VideoSegmenter
from vos.data.metrics import db_eval_iou, evaluate_sequence
from vos.data.synthetic import make_clip, make_pair

from .config import TrainConfig

__all__ = ["eval_data", "evaluate"]

#: a held-out pair: prompt frame, prompt labels, query frame, query labels (``vos.data.synthetic.make_pair``)
Pair = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
#: a held-out clip: frames (T, H, W, 3) and labels (T, H, W) (``vos.data.synthetic.make_clip``)
Clip = Tuple[np.ndarray, np.ndarray]


def eval_data(cfg: TrainConfig) -> Tuple[List[Pair], List[Clip]]:
    """Held-out synthetic pairs and clips from `eval_seed` (training draws its scenes elsewhere)."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.eval_seed, 1]))
    pairs = [make_pair(rng, tuple(cfg.synthetic_size), num_objects=int(rng.integers(1, 4)),
                       max_gap=cfg.synthetic_max_gap) for _ in range(cfg.eval_pairs)]
    clips = [make_clip(int(np.random.SeedSequence([cfg.eval_seed, 2, i]).generate_state(1)[0]),
                       cfg.eval_clip_frames, tuple(cfg.eval_clip_size), num_objects=2 + i % 2)
             for i in range(cfg.eval_clips)]
    return pairs, clips


@torch.no_grad()
def evaluate(model: SegGPT, pairs: Sequence[Pair], clips: Sequence[Clip],
             device: Optional[torch.device] = None) -> Dict[str, float]:
    """mIoU of decoded held-out pairs (per object, palette colours as at inference) and clip J&F.

    Clips are segmented by the shipped engine itself (``vos.VideoSegmenter`` with the engine settings
    the model's weights recommend, else the defaults): the first frame's true masks given with
    ``add_mask``, every other frame from ``propagate``, scored by ``vos.data.metrics.evaluate_sequence``
    (the DAVIS rules: the first and last frames left out).
    """
    was_training = model.training
    device = device or next(model.parameters()).device
    out: Dict[str, float] = {}
    try:
        if pairs:
            predictor = SegGPTPredictor(model.eval())
            ious = []
            for p, pl, q, ql in pairs:
                pred = predictor.predict([q], [p], [pl], num_labels=int(max(pl.max(), ql.max(), 1)))[0].labels
                # the benchmark's own IoU (an object absent from both masks scores 1)
                ious += [float(db_eval_iou(ql == obj, pred == obj)[0]) for obj in np.unique(pl) if obj != 0]
            out["miou"] = float(np.mean(ious)) if ious else float("nan")
        if clips:
            engine = VideoSegmenter(model, config=EngineConfig.load(None, getattr(model, "recommended_settings", None)),
                                    device=device)
            js, fs = [], []
            for frames, labels in clips:
                state = engine.init_state(frames)
                objects = engine.add_mask(state, 0, labels[0])
                preds = np.zeros_like(labels)
                for result in engine.propagate(state):
                    preds[result.frame_idx] = result.labels
                for s in evaluate_sequence(labels, preds, objects).values():
                    js.append(float(np.mean(s["J"])))
                    fs.append(float(np.mean(s["F"])))
            out["J"], out["F"] = float(np.mean(js)), float(np.mean(fs))
            out["JF"] = (out["J"] + out["F"]) / 2
    finally:
        model.train(was_training)
    return out
