"""Property-based: no input ends in anything but a result or our documented error.

* `seggpt.masks.parse_mask`: any array or PIL image -> a ParsedMask (2-D int32 ids 0..255) or InputError;
* `VideoSegmenter.add_new_mask` / `add_mask` (any frame index, object id, mask) -> accepted or EngineError;
* `LiveStream.step` (any frame, mask, object ids) -> a FrameResult or EngineError.

The examples are derandomized (the same every run) so that CI is stable; the model is a random tiny one.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from seggpt.errors import InputError
from seggpt.masks import parse_mask

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DTYPES = st.sampled_from([np.bool_, np.uint8, np.uint16, np.int8, np.int32, np.int64, np.uint64, np.float32,
                          np.float64, np.complex64])


@st.composite
def arrays(draw, max_side=6, max_dims=4):
    dtype = draw(DTYPES)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side))
    return draw(hnp.arrays(dtype, shape))


@st.composite
def images(draw):
    mode = draw(st.sampled_from(["1", "L", "P", "RGB", "RGBA", "LA", "I", "I;16", "F", "PA", "CMYK", "YCbCr"]))
    w, h = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    im = Image.new(mode, (w, h))
    count = w * h * len(im.getbands())
    values = draw(st.lists(st.integers(0, 255), min_size=count, max_size=count))
    data = bytes(values)
    if mode in ("I", "F", "I;16"):
        arr = np.array(values, np.float32 if mode == "F" else np.int32).reshape(h, w)
        return Image.fromarray(arr.astype(np.uint16) if mode == "I;16" else arr)
    try:
        return Image.frombytes(mode, (w, h), data) if mode != "1" else Image.frombytes("L", (w, h), data).convert("1")
    except ValueError:
        return im


def _check_parsed(parsed) -> None:
    labels = parsed.labels
    assert labels.ndim == 2 and labels.dtype == np.int32 and labels.size
    assert labels.min() >= 0 and labels.max() <= 255


@SETTINGS
@given(st.one_of(arrays(), images()), st.booleans())
def test_parse_mask_gives_labels_or_mask_error(mask, allow_empty):
    try:
        parsed = parse_mask(mask, allow_empty=allow_empty)
    except InputError as e:
        assert str(e) and "\n" not in str(e)
        return
    _check_parsed(parsed)


@SETTINGS
@given(st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(st.integers(0, 3), max_size=3)))
def test_parse_mask_refuses_what_is_no_mask(thing):
    with pytest.raises(InputError):
        parse_mask(thing)


# ------------------------------------------------------------------------------------------- the library

SIZE = (12, 16)


@pytest.fixture(scope="module")
def segmenter(tiny_model):
    from vos import VideoSegmenter

    return VideoSegmenter(tiny_model, config={"memory": 1}, device="cpu")


INDICES = st.one_of(st.integers(-3, 6), st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(),
                    st.text(max_size=2), st.just(np.int64(1)), st.just(np.float32(1.0)))
IDS = st.one_of(st.integers(-2, 300), st.integers(min_value=2 ** 31, max_value=2 ** 70), st.floats(allow_nan=True),
                st.booleans(), st.none(), st.text(max_size=2), st.just(np.uint8(3)), st.just(np.int64(-1)))


@st.composite
def masks(draw):
    kind = draw(st.sampled_from(["array", "right", "right", "none", "list", "string", "ragged"]))
    if kind == "right":  # the frame's size: the interesting half
        dtype = draw(DTYPES)
        return draw(hnp.arrays(dtype, SIZE, elements=hnp.from_dtype(np.dtype(dtype), allow_nan=True)
                               if np.dtype(dtype).kind in "fc" else None))
    if kind == "array":
        return draw(arrays())
    if kind == "none":
        return None
    if kind == "list":
        return draw(st.lists(st.lists(st.integers(0, 2), min_size=16, max_size=16), min_size=12, max_size=12))
    if kind == "ragged":
        return [[1, 2], [3]]
    return "mask"


def _documented(call):
    from vos.engine.segmenter import EngineError

    try:
        return call()
    except EngineError as e:
        assert str(e) and "\n" not in str(e)
        return None


@SETTINGS
@given(st.one_of(st.integers(0, 4), INDICES), st.one_of(st.integers(1, 5), IDS), masks())
def test_add_new_mask_accepts_or_raises_engine_error(segmenter, frame_idx, obj_id, mask):
    frames = np.zeros((5, *SIZE, 3), np.uint8)
    state = segmenter.init_state(frames)
    _documented(lambda: segmenter.add_new_mask(state, frame_idx, obj_id, mask))
    _documented(lambda: segmenter.add_mask(state, frame_idx, mask))
    for obj in state.object_ids:  # whatever was accepted is a positive integer id
        assert isinstance(obj, int) and obj >= 1


@st.composite
def frames(draw):
    kind = draw(st.sampled_from(["good", "good", "good", "other", "array", "none"]))
    if kind == "good":
        return np.zeros((*SIZE, 3), np.uint8)
    if kind == "other":
        return np.zeros((draw(st.integers(0, 20)), draw(st.integers(0, 20)), 3), np.uint8)
    if kind == "array":
        return draw(arrays(max_side=4))
    return None


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(frames(), st.one_of(st.none(), masks()),
                          st.one_of(st.none(), st.lists(st.one_of(st.integers(1, 3), IDS), max_size=2))),
                min_size=1, max_size=4))
def test_live_stream_steps_give_results_or_engine_errors(segmenter, steps):
    stream = segmenter.stream()
    for frame, mask, object_ids in steps:
        result = _documented(lambda: stream.step(frame, mask, object_ids))
        if result is not None:
            assert result.labels.shape == np.asarray(frame).shape[:2]
            assert result.masks.shape[0] == len(result.object_ids)
