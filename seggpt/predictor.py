"""SegGPTPredictor: images and label maps in, label maps out, at the caller's sizes.

The one place where pixels meet the model: resizing to the model's image size (bicubic, antialiased,
as PIL does for the official code; masks nearest with PIL's pixel-centre rule), ImageNet
normalisation, colour coding of label maps, batching, and the way back (denormalise, nearest colour,
resize to the query's original size as ``seggpt.decode`` resizes scores). The video engine and the
image CLI both use it.

The colour decoding of the model's output (:func:`denormalize`, :func:`decode_colors`) works on torch
tensors on any device and in batches, because it runs before anything leaves the GPU; the colours
themselves come from the torch-free ``seggpt.colors``.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import decode as _decode
from .colors import IMAGENET_MEAN, IMAGENET_STD, distinct_colors, palette
from .decode import Decoding, resize_scores
from .errors import InputError
from .model import SegGPT

ArrayLike = Union[np.ndarray, Image.Image]

# Colours per chunk in decode_colors: bounds the temporary to (B, chunk, H, W) floats.
_DECODE_CHUNK = 16


def decode_colors(rgb: torch.Tensor, colors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-colour decoding of predicted RGB canvases.

    Args:
        rgb: ``(B, 3, H, W)`` float in 0..255 (see :func:`denormalize`), any device.
        colors: ``(L, 3)`` colours of labels ``0..L-1`` (any numeric dtype).

    Returns:
        ``labels`` ``(B, H, W)`` long: the index of the nearest colour (squared L2), and
        ``distance`` ``(B, H, W)`` float32: the Euclidean distance (0..255 units) from the pixel
        to that colour. The model paints objects with the prompt colours, so a small distance
        means a confident pixel; a pixel half-way between two colours is ambiguous.

    The squared distance is expanded as ``|x|^2 - 2 x.c + |c|^2`` over chunks of colours, so the
    temporary is ``(B, chunk, H, W)`` and never ``(B, L, H, W, 3)``. The expansion loses a little
    precision, so the returned distance is recomputed exactly for the chosen colour.
    """
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb must be (B, 3, H, W), got {tuple(rgb.shape)}")
    if colors.ndim != 2 or colors.shape[1] != 3 or colors.shape[0] == 0:
        raise ValueError(f"colors must be a non-empty (L, 3), got {tuple(colors.shape)}")
    x = rgb.float()
    c = colors.to(device=x.device, dtype=torch.float32)
    x_sq = (x * x).sum(dim=1)  # (B, H, W)
    best = torch.full_like(x_sq, float("inf"))
    labels = torch.zeros(x_sq.shape, dtype=torch.long, device=x.device)
    for start in range(0, c.shape[0], _DECODE_CHUNK):
        chunk = c[start : start + _DECODE_CHUNK]
        cross = torch.einsum("bchw,lc->blhw", x, chunk)
        sq = x_sq.unsqueeze(1) - 2.0 * cross + (chunk * chunk).sum(dim=1).view(1, -1, 1, 1)
        chunk_best, chunk_arg = sq.min(dim=1)
        better = chunk_best < best  # strict: ties keep the lower label, like argmin
        best = torch.where(better, chunk_best, best)
        labels = torch.where(better, chunk_arg + start, labels)
    chosen = c[labels].permute(0, 3, 1, 2)  # (B, 3, H, W)
    distance = (x - chosen).pow(2).sum(dim=1).sqrt()
    return labels, distance


def denormalize(pred: torch.Tensor) -> torch.Tensor:
    """Map an ImageNet-normalised ``(B, 3, H, W)`` RGB prediction back to 0..255 (clipped).

    The model regresses the normalised target canvas; colours are compared in 0..255 units.
    Computed in float32 (the model may run in half precision; colour distances should not).
    """
    if pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"pred must be (B, 3, H, W), got {tuple(pred.shape)}")
    p = pred.float()
    mean = torch.tensor(IMAGENET_MEAN, device=p.device, dtype=p.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=p.device, dtype=p.dtype).view(1, 3, 1, 1)
    return ((p * std + mean) * 255.0).clamp_(0.0, 255.0)


def _colour_index(labels: torch.Tensor, object_ids: Sequence[int]) -> torch.Tensor:
    """Object ids -> 1 + their position in `object_ids` (0 for any other id), for ids of any size."""
    ids = torch.as_tensor(list(object_ids), dtype=torch.long, device=labels.device)
    sorted_ids, order = ids.sort()
    pos = torch.searchsorted(sorted_ids, labels).clamp_max(len(ids) - 1)
    return torch.where(sorted_ids[pos] == labels, order[pos] + 1, torch.zeros_like(labels))


def _moved(name: str):
    """`seggpt.decode`'s function `name` as a static method of SegGPTPredictor, where it used to be: it works,
    with a DeprecationWarning, for one release."""
    fn = getattr(_decode, name)

    @functools.wraps(fn)
    def alias(*args, **kwargs):
        warnings.warn(f"SegGPTPredictor.{name} is seggpt.decode.{name} now; the old name goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return fn(*args, **kwargs)

    return staticmethod(alias)


@dataclass
class Prediction:
    """One query's result: labels (H,W) int at the query's size, distance (H,W) float (0 = sure)."""

    labels: np.ndarray
    distance: np.ndarray


def _as_rgb_array(image: ArrayLike) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        image = np.asarray(image.convert("RGB"))
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"an image must be (H, W, 3) uint8, got shape {image.shape}")
    image = np.ascontiguousarray(image[:, :, :3])
    return image if image.flags.writeable else image.copy()  # torch wants writable memory


def check_infer_inputs(images: object, prompt_images: object, prompt_masks: object, embedding_type: object,
                       image_size: Tuple[int, int]) -> None:
    """The inputs of `SegGPTPredictor.infer`, checked before the model sees them (InputError, one line).

    A numpy array, a missing prompt axis, uint8 pixels or a NaN would otherwise reach torch's internals
    (a traceback far from the cause) or come back as a NaN mask.
    """
    h, w = image_size
    for name, x, dims in (("images", images, 4), ("prompt_images", prompt_images, 5),
                          ("prompt_masks", prompt_masks, 5)):
        layout = "(B,3,H,W)" if dims == 4 else "(B,K,3,H,W)"
        if not isinstance(x, torch.Tensor):
            raise InputError(f"{name}: a float torch.Tensor {layout} is expected, got {type(x).__name__}; frames "
                             f"and masks as arrays go through predict() or preprocess_images()/encode_masks()")
        if x.ndim != dims:
            hint = " (the prompt axis K is missing: x.unsqueeze(1))" if dims == 5 and x.ndim == 4 else ""
            raise InputError(f"{name}: {layout} is expected, got {x.ndim}-D shape {tuple(x.shape)}{hint}")
        if not x.is_floating_point():
            raise InputError(f"{name}: ImageNet-normalised floats are expected (preprocess_images / "
                             f"encode_masks), got {str(x.dtype).replace('torch.', '')}")
        if x.shape[-3] != 3 or tuple(x.shape[-2:]) != (h, w):
            raise InputError(f"{name}: {layout} with 3 channels at the model's image size {h}x{w} is expected, "
                             f"got shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise InputError(f"{name}: holds NaN or infinite values")
    b, k = prompt_images.shape[:2]  # type: ignore[union-attr]
    if images.shape[0] != b or tuple(prompt_masks.shape[:2]) != (b, k):  # type: ignore[union-attr]
        raise InputError(f"images {tuple(images.shape)}, prompt_images {tuple(prompt_images.shape)} and prompt_masks "  # type: ignore[union-attr]
                         f"{tuple(prompt_masks.shape)} disagree on the batch B or the prompts K")  # type: ignore[union-attr]
    if k < 1 or b < 1:
        raise InputError(f"prompt_images: at least one query (B >= 1) and one prompt (K >= 1) are needed, got "
                         f"B={b}, K={k}")
    if embedding_type not in ("instance", "semantic"):
        raise InputError(f"embedding_type: 'instance' or 'semantic', got {embedding_type!r}")


class SegGPTPredictor:
    """Pre- and post-processing around a `SegGPT` (see the module docstring).

    `exact_resize=True` resizes images with PIL exactly as the official code does (CPU, slower); the
    default resizes with torch's antialiased bicubic on the model's device (on the CPU its uint8 kernel,
    a port of Pillow's), which agrees with PIL to within one grey level on 99% of pixels (mean 0.2
    levels on the official examples).
    """

    def __init__(
        self,
        model: Union[SegGPT, str],
        device: Optional[Union[str, torch.device]] = None,
        dtype: Optional[torch.dtype] = None,
        exact_resize: bool = False,
    ):
        if isinstance(model, str):  # packaged names first; the file checked before the model is built
            model = SegGPT.from_pretrained(model, device=device)
        elif device is not None:
            model = model.to(device)
        self.model = model.eval()
        #: the dtype of the model call (None: the weights' own precision, fp32). It belongs to this
        #: predictor, not to the shared nn.Module: two predictors on one model never interfere. A reduced
        #: dtype runs a copy of the model with its matrix weights cast once (`SegGPT.reduced_precision_copy`),
        #: re-made whenever the shared model's weights change (adaptation, tuning, loading).
        if dtype is not None and dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise InputError(f"dtype must be None, torch.float32, torch.bfloat16 or torch.float16, got {dtype!r}")
        self.dtype = None if dtype == torch.float32 else dtype
        self.exact_resize = exact_resize
        self._cast: Optional[Tuple[tuple, SegGPT]] = None
        self._compile_options: Optional[dict] = None
        self._compiled: Optional[Tuple[SegGPT, object]] = None

    def compile(self, mode: str = "default", backend: str = "inductor") -> "SegGPTPredictor":
        """torch.compile this predictor's model call for its fixed canvas shape (the shared model is untouched).

        mode "reduce-overhead" also captures CUDA graphs on a GPU. The first call of each
        (batch, prompts) shape compiles (minutes on a CPU); later calls reuse it.
        """
        self._compile_options = dict(mode=None if mode == "default" else mode, backend=backend, dynamic=False)
        self._compiled = None
        return self

    def call_model(self) -> SegGPT:
        """The module the model call runs: the shared model in fp32, else its reduced-precision copy.

        The copy is re-made when a parameter of the shared model is replaced, moved or changed in place
        (load_state_dict, an optimizer step, `p.mul_()` under no_grad): its key is the parameters' version
        counters. A write through `p.data` bypasses the counter and is not seen."""
        dtype = self.dtype
        if dtype is None or dtype == torch.float32:
            return self.model
        key = (dtype,) + tuple((p._version, p.data_ptr(), p.device) for p in self.model.parameters())
        if self._cast is None or self._cast[0] != key:
            self._cast = self._compiled = None  # the stale copy's memory goes before the new one is made
            self._cast = (key, self.model.reduced_precision_copy(dtype))
        return self._cast[1]

    def infer(self, images: torch.Tensor, prompt_images: torch.Tensor, prompt_masks: torch.Tensor,
              embedding_type: str = "instance") -> torch.Tensor:
        """`SegGPT.infer` in this predictor's dtype (and compiled, after `compile`).

        images (B,3,H,W) and prompt_images, prompt_masks (B,K,3,H,W): float tensors, ImageNet-normalised
        at the model's image size (`preprocess_images`, `encode_masks`); anything else is an
        `InputError` naming the argument (`check_infer_inputs`).
        """
        check_infer_inputs(images, prompt_images, prompt_masks, embedding_type, self.image_size)
        model = self.call_model()
        if self._compile_options is None:
            return model.infer(images, prompt_images, prompt_masks, embedding_type=embedding_type)
        if self._compiled is None or self._compiled[0] is not model:
            self._compiled = (model, torch.compile(model.infer, **self._compile_options))
        return self._compiled[1](images, prompt_images, prompt_masks, embedding_type=embedding_type)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def image_size(self) -> Tuple[int, int]:
        return self.model.config.image_size

    # ------------------------------------------------------------------ inputs
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,h,w) float in 0..255 -> ImageNet-normalised."""
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1) * 255.0
        return (x - mean) / std

    def preprocess_images(self, images: Union[Sequence[ArrayLike], np.ndarray, torch.Tensor]) -> torch.Tensor:
        """Frames (N of (H,W,3) uint8, or a (N,H,W,3) uint8 tensor) -> (N,3,h,w) normalised, on the device."""
        h, w = self.image_size
        if self.exact_resize:
            arrays = [np.asarray(Image.fromarray(_as_rgb_array(np.asarray(im))).resize((w, h), Image.BICUBIC))
                      for im in images]
            return self.normalize(torch.from_numpy(np.stack(arrays)).to(self.device).permute(0, 3, 1, 2).float())
        if isinstance(images, torch.Tensor):
            batches = [images.to(self.device, non_blocking=True)]
        else:
            arrays = [_as_rgb_array(np.asarray(im)) for im in images]
            same_size = all(a.shape == arrays[0].shape for a in arrays)
            # one frame (the usual video step) is a view, not a copy of a full-size frame
            groups = [np.stack(arrays)] if same_size and len(arrays) > 1 else [a[None] for a in arrays]
            pin = self.device.type == "cuda"  # page-locked host memory: the copy overlaps with compute
            batches = [(torch.from_numpy(g).pin_memory() if pin else torch.from_numpy(g)).to(self.device, non_blocking=True)
                       for g in groups]
        out = []
        for batch in batches:
            x = batch.permute(0, 3, 1, 2)
            if tuple(x.shape[-2:]) != (h, w):
                if x.device.type == "cpu":  # torch's uint8 kernel (Pillow's algorithm): ~10x faster than float
                    x = F.interpolate(x.contiguous(memory_format=torch.channels_last), size=(h, w), mode="bicubic",
                                      align_corners=False, antialias=True)
                else:
                    x = F.interpolate(x.float(), size=(h, w), mode="bicubic", align_corners=False, antialias=True)
                    x = x.round_().clamp_(0.0, 255.0)  # PIL returns uint8: round like it does
            out.append(x.float())
        return self.normalize(torch.cat(out) if len(out) > 1 else out[0])

    def resize_labels(self, labels: np.ndarray) -> np.ndarray:
        """Nearest resize of a label map to the model size, with PIL's pixel-centre rule
        (F.interpolate's "nearest-exact"), by indexing: exact for ids of any size."""
        h, w = self.image_size
        if labels.shape == (h, w):
            return labels
        rows = np.minimum(((np.arange(h) + 0.5) * (labels.shape[0] / h)).astype(np.int64), labels.shape[0] - 1)
        cols = np.minimum(((np.arange(w) + 0.5) * (labels.shape[1] / w)).astype(np.int64), labels.shape[1] - 1)
        return labels[rows[:, None], cols[None, :]].astype(np.int64)

    def encode_masks(self, label_maps: Sequence[np.ndarray], colors: np.ndarray) -> torch.Tensor:
        """Label maps (any sizes) -> (N,3,h,w) normalised colour masks, on the device (label i -> colors[i])."""
        small = torch.from_numpy(np.stack([self.resize_labels(np.asarray(m)) for m in label_maps])).to(self.device)
        if int(small.max()) >= len(colors) or int(small.min()) < 0:
            raise ValueError(f"label ids span {int(small.min())}..{int(small.max())}, only {len(colors)} colours")
        return self._paint(small.long(), colors)

    def _paint(self, colour_index: torch.Tensor, colors: np.ndarray) -> torch.Tensor:
        """(K,h,w) colour indices -> (K,3,h,w) normalised colour masks: the one way masks are painted."""
        colors_t = torch.as_tensor(np.asarray(colors), dtype=torch.float32, device=colour_index.device)
        return self.normalize(colors_t[colour_index].permute(0, 3, 1, 2))

    # ------------------------------------------------------------------ the model call of the video engine
    @torch.no_grad()
    def scores(
        self,
        queries: torch.Tensor,
        prompt_images: torch.Tensor,
        prompt_labels: torch.Tensor,
        object_ids: Sequence[int],
        mode: str = "joint",
        colors: str = "distinct",
        embedding_type: str = "instance",
        absent_prompts: str = "keep",
    ) -> torch.Tensor:
        """Per-object scores of B queries against K shared prompts: (B, 1+N, h, w), higher = more likely.

        queries (B,3,h,w) and prompt_images (K,3,h,w) come from `preprocess_images`; prompt_labels
        (K,h,w) hold object ids at model size (ids not in `object_ids` count as background).
        Column 0 is the background, column i the object `object_ids[i-1]`.

        mode "joint": every object in one pass, object i painted with colour i+1 of `colors`
        ("distinct": RGB-cube corners, as far apart as possible; "palette": transformers' SegGPT
        palette); scores are minus the colour distance. mode "separate": each object on its own,
        white on black (the official demo's setting, N passes); an object's score is how much closer
        to white than to black a pixel is, and the background's score is 1 - the best object's, so a
        pixel goes to an object only past half-way.

        absent_prompts (separate mode): "keep" shows every prompt to every object's pass; "drop" shows an
        object only the prompts in which it appears (all of them where none does), so that frames on
        which it was lost (empty masks: "nothing here") do not outvote the ones that show it when it
        comes back. Objects that see the same prompts share one model call.
        """
        if mode not in ("joint", "separate"):
            raise ValueError(f"mode must be 'joint' or 'separate', got {mode!r}")
        if absent_prompts not in ("keep", "drop"):
            raise ValueError(f"absent_prompts must be 'keep' or 'drop', got {absent_prompts!r}")
        n, b, k = len(object_ids), queries.shape[0], prompt_images.shape[0]
        if n == 0:
            raise ValueError("scores needs at least one object id")
        index = _colour_index(prompt_labels.long(), object_ids)  # (K,h,w): 0 background, i the i-th object
        if mode == "joint":
            palette_rgb = (distinct_colors if colors == "distinct" else palette)(n)
            masks = self._paint(index, palette_rgb)
            out = self.infer(queries, prompt_images[None].expand(b, -1, -1, -1, -1),
                             masks[None].expand(b, -1, -1, -1, -1), embedding_type=embedding_type)
            return -self.colour_distances(out, palette_rgb)
        black_white = palette(1)
        per_object = torch.stack([(index == i + 1).long() for i in range(n)])  # (N,K,h,w)
        masks = self._paint(per_object.flatten(0, 1), black_white).reshape(n, k, 3, *index.shape[-2:])
        shown = torch.ones(n, k, dtype=torch.bool)
        if absent_prompts == "drop":
            shown = per_object.flatten(2).any(dim=2).cpu()
            shown[~shown.any(dim=1)] = True  # an object no prompt shows sees them all
        groups: Dict[Tuple[bool, ...], List[int]] = {}
        for i in range(n):
            groups.setdefault(tuple(shown[i].tolist()), []).append(i)
        parts: Dict[int, torch.Tensor] = {}
        for key, objs in groups.items():
            m = len(objs)
            # the usual case, every object sees every prompt: the tensors as they are (no copies per frame)
            images, object_masks = prompt_images, masks if m == n else masks[objs]
            if not all(key):
                use = torch.tensor(key).nonzero()[:, 0].to(prompt_images.device)
                images, object_masks = images[use], object_masks[:, use]
            out = self.infer(
                queries.repeat_interleave(m, dim=0),
                images[None].expand(b * m, -1, -1, -1, -1),
                object_masks[None].expand(b, -1, -1, -1, -1, -1).reshape(b * m, *object_masks.shape[1:]),
                embedding_type=embedding_type,
            )
            d = self.colour_distances(out, black_white)  # (B*m, 2, h, w)
            white = (d[:, 0] / (d[:, 0] + d[:, 1]).clamp_min(1e-6)).reshape(b, m, *d.shape[-2:])  # 1 = white
            parts.update({i: white[:, j] for j, i in enumerate(objs)})
        fg = torch.stack([parts[i] for i in range(n)], dim=1)
        return torch.cat([1.0 - fg.max(dim=1, keepdim=True).values, fg], dim=1)

    # ------------------------------------------------------------------ outputs
    def decode(
        self, pred: torch.Tensor, colors: np.ndarray, out_size: Optional[Tuple[int, int]] = None,
        resize: str = "smooth",
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Model output (B,3,h,w) -> labels (B,H,W) long and colour distance (B,H,W), on the device.

        resize="smooth" interpolates each colour's distance map bilinearly to the output size and takes
        the nearest there (smooth edges, and a blend of two colours never decodes to a third);
        resize="nearest" decodes at model size and upsamples with nearest, as the official code does.
        """
        rgb = denormalize(pred)
        colors_t = torch.as_tensor(np.asarray(colors), dtype=torch.float32, device=rgb.device)
        if out_size is None or tuple(out_size) == tuple(rgb.shape[-2:]):
            return decode_colors(rgb, colors_t)
        if resize == "nearest" or len(colors_t) > 32:  # decided at model size: one map, not one per colour
            labels, dist = decode_colors(rgb, colors_t)
            up = Decoding("nearest").resized(torch.stack([labels.float(), dist], dim=1), out_size)
            return up[:, 0].long(), up[:, 1]
        if resize != "smooth":
            raise ValueError(f"resize must be 'smooth' or 'nearest', got {resize!r}")
        dist, labels = self.colour_distances(pred, colors, out_size).min(dim=1)
        return labels, dist

    def colour_distances(
        self, pred: torch.Tensor, colors: np.ndarray, out_size: Optional[Tuple[int, int]] = None
    ) -> torch.Tensor:
        """Euclidean distance (0..255 units) of every pixel to every colour, (B, L, H, W).

        Computed at model size and, where `out_size` differs, resized bilinearly: interpolating
        distances (not colours) is what keeps a blend of two colours from decoding to a third.
        """
        rgb = denormalize(pred)
        colors_t = torch.as_tensor(np.asarray(colors), dtype=torch.float32, device=rgb.device)
        dists = (rgb[:, None] - colors_t[None, :, :, None, None]).pow(2).sum(2).sqrt()
        return resize_scores(dists, out_size)

    # moved to seggpt.decode, the one post-processing path
    confidence = _moved("confidence")
    resize_scores = _moved("resize_scores")
    resize_argmax = _moved("resize_argmax")

    # ------------------------------------------------------------------ one call
    @torch.no_grad()
    def predict(
        self,
        images: Sequence[ArrayLike],
        prompt_images: Sequence[ArrayLike],
        prompt_labels: Sequence[np.ndarray],
        num_labels: Optional[int] = None,
        embedding_type: str = "instance",
        batch_size: int = 4,
        colors: Optional[np.ndarray] = None,
    ) -> List[Prediction]:
        """Segment every image with the same K prompts (image + label map each), batched.

        Labels in the prompts are painted with `colors` (default: the SegGPT palette for the largest
        id) and the prediction decoded with the same colours, so the ids come back as given.
        """
        if len(prompt_images) != len(prompt_labels) or not prompt_images:
            raise ValueError("give one label map per prompt image, and at least one prompt")
        if colors is None:
            n = num_labels if num_labels is not None else max(int(np.max(m)) for m in prompt_labels)
            colors = palette(max(n, 1))
        p_img = self.preprocess_images([_as_rgb_array(np.asarray(im)) for im in prompt_images])
        return self.predict_encoded(images, p_img, self.encode_masks(prompt_labels, colors), colors, embedding_type,
                                    batch_size)

    @torch.no_grad()
    def predict_encoded(self, images: Sequence[ArrayLike], prompt_images: torch.Tensor, prompt_masks: torch.Tensor,
                        colors: np.ndarray, embedding_type: str = "instance", batch_size: int = 4) -> List[Prediction]:
        """`predict` with the K prompts already at model size, (K,3,h,w) each (`preprocess_images`,
        `encode_masks`, or a tuned prompt): labels are indices into `colors`, at each image's size."""
        results: List[Prediction] = []
        for start in range(0, len(images), batch_size):
            chunk = [_as_rgb_array(np.asarray(im)) for im in images[start:start + batch_size]]
            q = self.preprocess_images(chunk)
            b = q.shape[0]
            pred = self.infer(q, prompt_images[None].expand(b, -1, -1, -1, -1),
                              prompt_masks[None].expand(b, -1, -1, -1, -1), embedding_type=embedding_type)
            for i, im in enumerate(chunk):
                labels, dist = self.decode(pred[i:i + 1], colors, im.shape[:2])
                results.append(Prediction(labels[0].cpu().numpy().astype(np.int32), dist[0].float().cpu().numpy()))
        return results


__all__ = ["SegGPTPredictor", "Prediction", "decode_colors", "denormalize"]
