"""A SAM 2 drop-in: SAM 2's video predictor verbs, names, arguments and outputs, on SegGPT.

Code written for SAM 2's mask prompts runs with two lines changed::

    from vos.sam2 import build_sam2_video_predictor          # was: from sam2.build_sam import ...
    predictor = build_sam2_video_predictor(weights="small", device="cpu")   # was: (model_cfg, checkpoint)
    # or SAM 2's other form: SegGPTVideoPredictor.from_pretrained("small")  # was: SAM2VideoPredictor.from_pretrained(model_id)

    inference_state = predictor.init_state(video_path="frames/")      # a JPEG folder or a video file
    _, obj_ids, masks = predictor.add_new_mask(inference_state, frame_idx=0, obj_id=1, mask=mask)
    for frame_idx, obj_ids, masks in predictor.propagate_in_video(inference_state):
        segments[frame_idx] = {o: (masks[i] > 0.0).cpu().numpy() for i, o in enumerate(obj_ids)}

The constructors take SegGPT weights (``"small"``, the packaged model, the default; ``"BAAI/seggpt-vit-large"``,
the official one; a file), loaded through the engine's checked loader (`VideoSegmenter`). SAM 2's own
arguments, ``build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_l.yaml", "./checkpoints/...pt")``, a
SAM 2 Hub id (``from_pretrained("facebook/sam2.1-hiera-large")``) or SAM 2's keywords (``ckpt_path=``,
``mode=``), are answered with one line (`EngineError`) saying this is SegGPT and what to pass instead,
never read as weights and a device. ``device`` is taken by keyword as in SAM 2 (``device="cuda"``).

What is SAM 2's here:
* `init_state(video_path, ...)` returns a dict with SAM 2's "num_frames", "video_height",
  "video_width", "device", "obj_ids", "obj_id_to_idx" and "obj_idx_to_id" (the rest of SAM 2's
  internals do not exist);
* object ids are any integers (0 too), as in SAM 2; masks may be numpy or torch, bool or 0/1, of
  any size with the video's aspect ratio (resized like SAM 2 does: bilinear, >= 0.5);
* masks come back as float32 torch tensors of shape (N, 1, H, W) at the video's resolution, one
  per object of `inference_state["obj_ids"]`, where ``> 0.0`` is the object (SegGPT gives no
  logits: +1.0 inside, -1.0 outside; for soft edges see `vos.io.exports.soft_alpha`);
* `propagate_in_video(inference_state, start_frame_idx=None, max_frame_num_to_track=None,
  reverse=False)`: start at the earliest frame with a mask unless told, track
  `max_frame_num_to_track` frames after the start (so one more is yielded; an integer >= 0), and a
  reverse pass from frame 0 yields nothing, all as SAM 2 does;
* errors name the caller's object ids and arguments, never the engine ids behind them; objects and
  masks cannot change while a propagation runs (`InferenceState.check_no_pass`), as in SAM 2;
* `propagate_in_video` shows SAM 2's "propagate in video" progress bar on stderr, and an "adapting" one
  when test-time adaptation runs; the keywords `progress=False` and `cancel=` (a threading.Event) are
  ours;
* `remove_object(inference_state, obj_id, strict=False, need_output=True)` returns
  ``(obj_ids, updated_frames)``; `reset_state(inference_state)`.

Point and box prompts (`add_new_points_or_box`, `add_new_points`) raise `PromptNotSupported` (an
alias of NotImplementedError): SegGPT is prompted with masks only.

Our own API (`vos.VideoSegmenter`) stays as it is: boolean masks, numpy arrays, ids >= 1.
"""
from __future__ import annotations

import os
import re
import threading
from contextlib import closing
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np
import torch
from tqdm import tqdm

from vos.engine.segmenter import VideoSegmenter
from vos.engine.objects import EngineError, check_frame_index, is_integer, known_or_nonempty, object_mask
from vos.engine.state import InferenceState



def _client_id(obj_id: object) -> int:
    """SAM 2's object ids are any integers, kept as the caller's (mapped to engine ids inside); a bool or
    a float is refused (True was kept beside 1 as another object), a numpy integer becomes an int."""
    if not is_integer(obj_id):
        raise EngineError(f"obj_id must be an integer, got {obj_id!r}")
    return int(obj_id)


#: what point and box prompts raise (SegGPT takes mask prompts only): an alias of Python's
#: NotImplementedError, the README's name for it, not another class
PromptNotSupported = NotImplementedError


_POINTS_MESSAGE = ("SegGPT is prompted with masks only: {verb} (points or boxes) is not available. Give a mask with "
                   "add_new_mask(inference_state, frame_idx, obj_id, mask); draw one in `python -m vos.app`.")


class SegGPTVideoPredictor:
    """SAM 2's `SAM2VideoPredictor` verbs on a `VideoSegmenter` (module docstring)."""

    def __init__(self, segmenter: VideoSegmenter):
        self.segmenter = segmenter
        self.device = segmenter.device

    @classmethod
    def from_pretrained(cls, weights: str = "small", *positional: Any,
                        device: Optional[Union[str, torch.device]] = "auto",
                        config: Union[None, str, dict] = None, dtype: Optional[str] = None,
                        **sam2_keywords: Any) -> "SegGPTVideoPredictor":
        """SAM 2's ``SAM2VideoPredictor.from_pretrained(model_id)``, on SegGPT: `weights` as
        `build_sam2_video_predictor` takes them, loaded the same way (`VideoSegmenter`, the checked loader).
        A SAM 2 Hub id (``facebook/sam2.1-hiera-large``) is answered with one line (EngineError)."""
        device, config, dtype = _device_of_call("SegGPTVideoPredictor.from_pretrained", weights, positional, device,
                                                sam2_keywords, config, dtype)
        return cls(VideoSegmenter(weights, config=config, device=device, dtype=dtype))

    # ------------------------------------------------------------------ state
    @torch.inference_mode()
    def init_state(self, video_path: Union[str, os.PathLike], offload_video_to_cpu: bool = False,
                   offload_state_to_cpu: bool = False, async_loading_frames: bool = False) -> Dict[str, Any]:
        """Open a video file or a folder of frames (the offload/async flags are accepted: frames stream anyway)."""
        src = os.fspath(video_path) if isinstance(video_path, (str, os.PathLike)) else video_path
        state = self.segmenter.init_state(src)
        h, w = state.size
        return {"vos_state": state, "num_frames": state.num_frames, "video_height": int(h), "video_width": int(w),
                "device": self.device, "obj_ids": [], "obj_id_to_idx": {}, "obj_idx_to_id": {},
                "_engine_ids": {}, "_next_engine_id": 1}

    def reset_state(self, inference_state: Dict[str, Any]) -> None:
        """Drop every mask and object; the video stays open."""
        self.segmenter.reset_state(self._state(inference_state))
        inference_state["obj_ids"].clear()
        inference_state["_engine_ids"].clear()
        self._reindex(inference_state)

    # ------------------------------------------------------------------ prompts
    @torch.inference_mode()
    def add_new_mask(self, inference_state: Dict[str, Any], frame_idx: int, obj_id: int, mask: Any
                     ) -> Tuple[int, List[int], torch.Tensor]:
        """Give (or correct) object `obj_id` on `frame_idx`; returns (frame_idx, obj_ids, video_res_masks)."""
        state = self._state(inference_state)
        obj_id = _client_id(obj_id)
        m = self._mask(mask, state.size, obj_id)
        # the engine's rules in the caller's ids first, so that a message names obj_id, not our engine id
        frame_idx = check_frame_index(frame_idx, state.num_frames)
        state.check_no_pass(f"add_new_mask(obj_id={obj_id}, frame_idx={frame_idx})")
        known_or_nonempty({obj_id: m}, inference_state["_engine_ids"], f"frame {frame_idx}")
        new = obj_id not in inference_state["_engine_ids"]
        engine_id = inference_state["_next_engine_id"] if new else inference_state["_engine_ids"][obj_id]
        self.segmenter.add_new_mask(state, frame_idx, engine_id, m)
        if new:
            inference_state["_engine_ids"][obj_id] = engine_id
            inference_state["_next_engine_id"] += 1
            inference_state["obj_ids"].append(obj_id)
            self._reindex(inference_state)
        return frame_idx, list(inference_state["obj_ids"]), self._given_masks(inference_state, frame_idx)

    def add_new_points_or_box(self, *args: Any, **kwargs: Any):
        raise NotImplementedError(_POINTS_MESSAGE.format(verb="add_new_points_or_box"))

    def add_new_points(self, *args: Any, **kwargs: Any):
        raise NotImplementedError(_POINTS_MESSAGE.format(verb="add_new_points"))

    def remove_object(self, inference_state: Dict[str, Any], obj_id: int, strict: bool = False,
                      need_output: bool = True) -> Tuple[List[int], List[Tuple[int, torch.Tensor]]]:
        """Remove an object and its masks; returns (obj_ids, [(frame_idx, video_res_masks) of the frames with masks])."""
        obj_id = _client_id(obj_id)
        if obj_id not in inference_state["_engine_ids"]:
            if strict:
                raise RuntimeError(f"Cannot remove object id {obj_id} as it doesn't exist. "
                                   f"All existing object ids: {inference_state['obj_ids']}.")
            return list(inference_state["obj_ids"]), []
        state = self._state(inference_state)
        state.check_no_pass(f"remove_object(obj_id={obj_id})")  # in the caller's id, before anything changes
        self.segmenter.remove_object(state, inference_state["_engine_ids"].pop(obj_id))
        inference_state["obj_ids"].remove(obj_id)
        self._reindex(inference_state)
        updated = [(f, self._given_masks(inference_state, f)) for f in state.annotations] if need_output else []
        return list(inference_state["obj_ids"]), updated

    # ------------------------------------------------------------------ propagation
    @torch.inference_mode()
    def propagate_in_video(self, inference_state: Dict[str, Any], start_frame_idx: Optional[int] = None,
                           max_frame_num_to_track: Optional[int] = None, reverse: bool = False, *,
                           progress: bool = True, cancel: Optional[threading.Event] = None
                           ) -> Iterator[Tuple[int, List[int], torch.Tensor]]:
        """Yield (frame_idx, obj_ids, video_res_masks (N, 1, H, W) float32) frame by frame, SAM 2's way.

        Beyond SAM 2 (keyword-only): `progress` shows progress bars on stderr, as SAM 2's "propagate in
        video" bar, and one for test-time adaptation when the settings ask for it (minutes on a CPU before
        the first frame); `cancel`, a threading.Event set from another thread, stops the work (during
        adaptation: nothing is yielded; during the frames: after the frame in progress)."""
        state = self._state(inference_state)
        if max_frame_num_to_track is not None and (not is_integer(max_frame_num_to_track)
                                                   or max_frame_num_to_track < 0):
            # checked here, in SAM 2's terms: the engine's own check would name the frame count made from it
            raise EngineError(f"max_frame_num_to_track must be an integer >= 0 (the frames tracked after the start), "
                              f"got max_frame_num_to_track={max_frame_num_to_track!r}")
        if not len(state.annotations):
            raise EngineError("No input masks are provided for any object; please add inputs first "
                              "(add_new_mask).")
        num_frames = state.num_frames
        if start_frame_idx is None:
            start_frame_idx = min(state.annotations)  # SAM 2: the earliest frame with inputs, also in reverse
        if max_frame_num_to_track is None:
            max_frame_num_to_track = num_frames if num_frames is not None else 2 ** 62
        if reverse and start_frame_idx == 0:
            return  # SAM 2 skips reverse tracking from frame 0
        # the start and the frames tracked after it: as many as asked, at most those left in that direction
        if reverse:
            left = start_frame_idx
        elif num_frames is None:
            left = max_frame_num_to_track
        else:
            left = num_frames - 1 - start_frame_idx
        count = min(max_frame_num_to_track, left) + 1
        bars: List[tqdm] = []  # the adaptation's bar, made at its first step (it often has nothing to learn)

        def adapted(p) -> None:
            if not bars:
                bars.append(tqdm(total=p.steps, unit="step", desc="adapting", disable=not progress))
            bars[0].update(p.step - bars[0].n)

        try:
            run = self.segmenter.propagate(state, start_frame_idx, count, reverse, progress=adapted, cancel=cancel)
        finally:
            for bar in bars:
                bar.close()
        with closing(run):
            for r in tqdm(run, total=count, desc="propagate in video", disable=not progress):
                yield r.frame_idx, list(inference_state["obj_ids"]), self._to_tensor(inference_state, r.labels)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _state(inference_state: Dict[str, Any]) -> InferenceState:
        try:
            return inference_state["vos_state"]
        except (KeyError, TypeError):
            raise EngineError("inference_state must come from this predictor's init_state") from None

    @staticmethod
    def _reindex(inference_state: Dict[str, Any]) -> None:
        ids = inference_state["obj_ids"]
        inference_state["obj_id_to_idx"] = {o: i for i, o in enumerate(ids)}
        inference_state["obj_idx_to_id"] = {i: o for i, o in enumerate(ids)}

    @staticmethod
    def _mask(mask: Any, size: Tuple[int, int], obj_id: Any) -> np.ndarray:
        m = object_mask(mask, f"object {obj_id}", above_zero=True)
        m = np.squeeze(m) if m.ndim > 2 else m
        if m.ndim != 2:
            raise EngineError(f"object {obj_id}: a mask must be 2-D (H, W), got shape {m.shape}")
        h, w = size
        if m.shape != (h, w):  # SAM 2 resizes a mask of another size (bilinear, >= 0.5)
            if 0 in m.shape or abs(m.shape[0] / m.shape[1] - h / w) > 0.01:
                raise EngineError(f"object {obj_id}: the mask is {m.shape[1]}x{m.shape[0]}, the video {w}x{h} "
                                  "(a different aspect ratio)")
            m = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5
        return m

    def _to_tensor(self, inference_state: Dict[str, Any], labels: np.ndarray) -> torch.Tensor:
        engine = [inference_state["_engine_ids"][o] for o in inference_state["obj_ids"]]
        masks = labels[None] == np.asarray(engine, dtype=labels.dtype).reshape(-1, 1, 1)
        return torch.from_numpy(np.where(masks, 1.0, -1.0).astype(np.float32))[:, None].to(self.device)

    def _given_masks(self, inference_state: Dict[str, Any], frame_idx: int) -> torch.Tensor:
        """The masks given on a frame, for every object (one not given there: all -1, as SAM 2's placeholder)."""
        state = self._state(inference_state)
        labels = (state.annotations.label_map(frame_idx, np.int64) if frame_idx in state.annotations
                  else np.zeros(state.size, np.int64))
        return self._to_tensor(inference_state, labels)


#: SAM 2's own keywords of build_sam2_video_predictor / from_pretrained, which mean nothing to SegGPT
_SAM2_KEYWORDS = ("config_file", "ckpt_path", "model_id", "mode", "hydra_overrides_extra", "apply_postprocessing",
                  "vos_optimized")
_DEVICE_LIKE = re.compile(r"[A-Za-z]+(:\d+)?")  # cpu, cuda:1, mps, auto (resolve_device judges the name)


def _sam2_model_name(value: object) -> bool:
    """A SAM 2 model config (a .yaml/.yml, a 'sam2'/'hiera' config path) or a SAM 2 Hub id
    (facebook/sam2.1-hiera-large): never SegGPT weights. A local file or folder that exists is the
    user's own (their SegGPT weights may be named anything), unless it is a YAML file."""
    if not isinstance(value, (str, os.PathLike)):
        return False
    text = os.fspath(value)
    if text.lower().endswith((".yaml", ".yml")):
        return True
    return bool(re.search(r"sam2|hiera", text, re.IGNORECASE)) and not os.path.exists(os.path.expanduser(text))


def _checkpoint_not_device(value: object) -> bool:
    """SAM 2's second argument, a checkpoint path (.pt/.pth, ./checkpoints/...), where a device is read."""
    if value is None or isinstance(value, torch.device):
        return False
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else str(value)
    return text.lower().endswith((".pt", ".pth")) or not _DEVICE_LIKE.fullmatch(text)


def _checkpoint_path(value: object) -> bool:
    """A `device=` that is a file path (SAM 2's checkpoint moved there), not a mistyped device name ("gpu7"
    gets the engine's own "unknown device" line)."""
    if not isinstance(value, (str, os.PathLike)):
        return False
    text = os.fspath(value)
    return text.lower().endswith((".pt", ".pth")) or "/" in text or "\\" in text


def _not_sam2(call: str, shown: List[str]) -> EngineError:
    """The one line for a SAM 2 call form: this is SegGPT, and what to pass instead (never a device error
    about a checkpoint path, nor a 'no such weights' about a YAML)."""
    return EngineError(f"{call}({', '.join(shown)}): this is SegGPT, not SAM 2: it takes no SAM 2 model config, "
                       f"checkpoint or Hub id; call {call}(weights=\"small\" | \"BAAI/seggpt-vit-large\" | a SegGPT "
                       f"weights file, device=\"auto\" | \"cpu\" | \"cuda\" ...)")


def _ours_positional(positional: Tuple[Any, ...], device: object, config: object, dtype: object
                     ) -> Optional[Tuple[object, object, object]]:
    """Our own positional form, ``(weights, device[, config[, dtype]])`` as the signature once was (device None
    included), as (device, config, dtype); None where the arguments are not that (SAM 2's checkpoint)."""
    if not 0 < len(positional) <= 3 or device != "auto" or _checkpoint_not_device(positional[0]):
        return None
    if (len(positional) > 1 and config is not None) or (len(positional) > 2 and dtype is not None):
        return None
    return (*positional, *(config, dtype)[len(positional) - 1:])  # the keywords fill what is not positional


def _device_of_call(call: str, weights: object, positional: Tuple[Any, ...], device: object,
                    extra: Dict[str, Any], config: object = None, dtype: object = None
                    ) -> Tuple[object, object, object]:
    """The device to use, once SAM 2's call forms are refused (`_not_sam2`) before anything loads.

    SAM 2 calls ``(model_cfg, ckpt_path, device="cuda")``: a second positional argument is SAM 2's
    checkpoint unless it is a device name (``("small", "cpu")`` still works), and the SAM 2 form is
    recognised with `device` given by keyword too (a signature with a positional `device` would make that
    call a TypeError, "multiple values for argument 'device'")."""
    sam2 = [k for k in extra if k in _SAM2_KEYWORDS]
    ours = _ours_positional(positional, device, config, dtype)
    # positional arguments that are not ours: SAM 2's checkpoint
    if sam2 or (positional and ours is None) or _sam2_model_name(weights) or _checkpoint_path(device):
        shown = [repr(weights), *(repr(a) for a in positional), *(f"{k}={extra[k]!r}" for k in sam2)]
        if _checkpoint_path(device):
            shown.append(f"device={device!r}")
        raise _not_sam2(call, shown)
    if extra:  # neither SAM 2's nor ours: as Python says it
        raise TypeError(f"{call}() got an unexpected keyword argument {next(iter(extra))!r}")
    return (device, config, dtype) if ours is None else ours


def build_sam2_video_predictor(weights: str = "small", *positional: Any,
                               device: Optional[Union[str, torch.device]] = "auto",
                               config: Union[None, str, dict] = None, dtype: Optional[str] = None,
                               **sam2_keywords: Any) -> SegGPTVideoPredictor:
    """SAM 2's constructor, on SegGPT: `weights` is anything `--weights` takes (default: our small packaged
    model); `config` the engine settings (a dict or a YAML file's `engine:` section).

    SAM 2's own call, ``build_sam2_video_predictor(model_cfg, checkpoint, device=...)``, would read the
    model config as weights and the checkpoint as a device; it is answered with one line (EngineError)
    saying what to pass instead, as are SAM 2's keywords (``ckpt_path=``, ``mode=``, ...)."""
    device, config, dtype = _device_of_call("build_sam2_video_predictor", weights, positional, device, sam2_keywords,
                                            config, dtype)
    return SegGPTVideoPredictor(VideoSegmenter(weights, config=config, device=device, dtype=dtype))


__all__ = ["build_sam2_video_predictor", "SegGPTVideoPredictor", "PromptNotSupported"]
