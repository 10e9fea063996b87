"""seggpt.decode, the one post-processing path: scores at model size -> labels, confidence, margins at frame size."""
import gc
import weakref

import numpy as np
import pytest
import torch

from seggpt.decode import Decoded, Decoding, confidence, host, resize_argmax, resize_scores
from seggpt.predictor import SegGPTPredictor


def _objects_scores(b, n, h, w, g):
    """Scores of label maps made of a few rectangles (what a trained model paints) plus noise."""
    labels = torch.zeros(b, h, w, dtype=torch.long)
    for i in range(b):
        for obj in range(1, n):
            y, x = torch.randint(0, max(h - 2, 1), (2,), generator=g).tolist()
            dy, dx = torch.randint(2, max(h // 2, 3), (2,), generator=g).tolist()
            labels[i, y:y + dy, x:x + dx] = obj
    onehot = torch.nn.functional.one_hot(labels, n).permute(0, 3, 1, 2).float()
    return onehot + 0.2 * torch.randn(b, n, h, w, generator=g)


def _mixed_fraction(scores):
    best = scores.max(dim=1).indices
    down = torch.cat([best[:, 1:], best[:, -1:]], dim=1)
    right = torch.cat([best[:, :, 1:], best[:, :, -1:]], dim=2)
    diag = torch.cat([down[:, :, 1:], down[:, :, -1:]], dim=2)
    return ((best != down) | (best != right) | (best != diag)).float().mean().item()


@pytest.mark.parametrize("shape,out", [((2, 4, 32, 32), (240, 427)), ((1, 3, 16, 20), (37, 23)),
                                       ((1, 2, 8, 8), (8, 16)), ((1, 5, 16, 16), (16, 16)), ((3, 1, 8, 8), (20, 20))])
@pytest.mark.parametrize("kind", ["objects", "smooth", "ragged"])
def test_resize_argmax_equals_argmax_of_resized_scores(shape, out, kind):
    g = torch.Generator().manual_seed(sum(shape))
    b, n, h, w = shape
    if kind == "objects":  # few mixed cells: the shortcut path
        scores = _objects_scores(b, n, h, w, g)
    elif kind == "smooth":
        coarse = torch.randn(b, n, max(h // 4, 2), max(w // 4, 2), generator=g)
        scores = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear")
    else:  # noise: most cells mixed, the resize-everything path
        scores = torch.randn(b, n, h, w, generator=g)
    ref = resize_scores(scores, out).max(dim=1).indices
    got = resize_argmax(scores, out)
    assert got.shape == ref.shape
    assert torch.equal(got, ref)
    ids = torch.arange(n, dtype=torch.int32) * 3 + 7  # values: object ids looked up on the way
    assert torch.equal(resize_argmax(scores, out, values=ids), ids[ref])


def test_resize_argmax_test_cases_reach_both_paths():
    g = torch.Generator().manual_seed(0)
    assert _mixed_fraction(_objects_scores(2, 4, 64, 64, g)) < 0.15
    assert _mixed_fraction(torch.randn(2, 4, 64, 64, generator=g)) > 0.15


def test_the_old_predictor_names_warn_and_give_the_same():
    """SegGPTPredictor.confidence / resize_scores / resize_argmax moved here: one release with a warning."""
    scores = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    for name, args in (("confidence", (scores,)), ("resize_scores", (scores, (20, 24))),
                       ("resize_argmax", (scores, (20, 24)))):
        with pytest.warns(DeprecationWarning, match=f"SegGPTPredictor.{name} is seggpt.decode.{name} now"):
            old = getattr(SegGPTPredictor, name)(*args)
        new = {"confidence": confidence, "resize_scores": resize_scores, "resize_argmax": resize_argmax}[name](*args)
        assert all(torch.equal(a, b) for a, b in zip(old, new)) if isinstance(new, tuple) else torch.equal(old, new)


def test_host_copies_a_slice_of_a_batch_and_keeps_a_frame_of_its_own():
    batch = torch.randn(3, 2, 4, 4)
    one = host(batch[1])
    assert torch.equal(one, batch[1]) and one.untyped_storage().data_ptr() != batch.untyped_storage().data_ptr()
    alone = torch.randn(1, 2, 4, 4)
    assert host(alone[0]).data_ptr() == alone.data_ptr()  # a batch of one frame: nothing to copy


@pytest.mark.parametrize("decoding", [Decoding("smooth"), Decoding("nearest"), Decoding("smooth", refine_pixels=1.0)])
def test_decoded_frames_hold_none_of_the_batch_and_agree_with_their_labels(decoding):
    """`finish`: labels now; confidence and margins later from this frame's own host copies (the batch's
    tensors can go), and a margin is positive exactly where the labels say that label (ties aside)."""
    g = torch.Generator().manual_seed(1)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (30, 44, 3), dtype=np.uint8) for _ in range(3)]
    scores = torch.nn.functional.interpolate(torch.randn(3, 3, 4, 4, generator=g), size=(16, 16), mode="bilinear")
    conf, best = confidence(scores)
    values = torch.tensor([0, 5, 9], dtype=torch.int32)
    gone = weakref.ref(scores)
    decoded = decoding.finish(scores, conf, best, values, (30, 44), frames)
    del scores, conf, best
    gc.collect()
    assert gone() is None
    for d in decoded:
        assert isinstance(d, Decoded) and d.labels.shape == (30, 44) and set(np.unique(d.labels)) <= {0, 5, 9}
        margins = d.margins([9, 5, 7])
        assert margins.shape == (3, 30, 44) and (margins[2] == -1).all()
        for row, label in ((0, 9), (1, 5)):
            assert ((margins[row] > 0) == (d.labels == label)).mean() > 0.999
        c = d.confidence
        assert c.shape == (30, 44) and c.dtype == np.float32 and 0 <= c.min() and c.max() <= 1


def test_a_frame_without_scores_has_no_margins():
    d = Decoded(np.zeros((4, 5), np.int32), np.ones((4, 5), np.float32))
    assert d.margins([1]) is None and d.confidence.shape == (4, 5)
