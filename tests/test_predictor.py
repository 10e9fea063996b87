"""SegGPTPredictor: preprocessing equal to transformers' processor, colour coding, decoding, batching."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from seggpt import SegGPT, get_config
from seggpt.colors import palette
from seggpt.predictor import SegGPTPredictor

# the official image size on a tiny encoder: preprocessing is checked at the real 448x448
CFG_448 = get_config("test-tiny").replace(image_size=(448, 448), patch_size=16, pretrain_image_size=448)


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(0)
    img = (rng.random((170, 297, 3)) * 255).astype(np.uint8)
    labels = np.zeros((170, 297), np.int64)
    labels[20:90, 30:200] = 1
    labels[100:150, 50:90] = 2
    return img, labels


@pytest.fixture(scope="module")
def pred(tiny_model):
    return SegGPTPredictor(tiny_model)


def test_exact_preprocessing_equals_transformers(sample):
    pytest.importorskip("transformers")
    from transformers import SegGptImageProcessor

    img, labels = sample
    ref = SegGptImageProcessor()(images=Image.fromarray(img), prompt_images=Image.fromarray(img),
                                 prompt_masks=labels, num_labels=2, return_tensors="pt")
    pred = SegGPTPredictor(SegGPT(CFG_448), exact_resize=True)
    assert (pred.preprocess_images([img]) - ref["pixel_values"]).abs().max().item() <= 1e-5
    assert (pred.encode_masks([labels], palette(2)) - ref["prompt_masks"]).abs().max().item() <= 1e-5


def test_fast_preprocessing_is_close_to_pil(shared_data):
    img = np.asarray(Image.open(shared_data / "seggpt-examples" / "hmbb_1.jpg").convert("RGB"))
    model = SegGPT(CFG_448)
    fast = SegGPTPredictor(model).preprocess_images([img])
    exact = SegGPTPredictor(model, exact_resize=True).preprocess_images([img])
    grey = (fast - exact).abs() * 0.229 * 255
    assert grey.mean().item() < 0.5
    assert (grey > 1.5).float().mean().item() < 0.01


def test_decode_recovers_painted_labels(sample):
    img, labels = sample
    pred = SegGPTPredictor(SegGPT(CFG_448))
    colors = palette(2)
    painted = pred.encode_masks([labels], colors)  # a "prediction" that paints exactly the prompt colours
    small = pred.resize_labels(labels)
    got, dist = pred.decode(painted, colors)
    assert torch.equal(got[0].cpu(), torch.from_numpy(small))
    assert dist.max().item() < 1e-3
    # back at the original size, both resize policies give the labels up to the one-pixel resampling band
    for mode in ("smooth", "nearest"):
        up, _ = pred.decode(painted, colors, out_size=labels.shape, resize=mode)
        assert up.shape == (1, 170, 297)
        assert (up[0].numpy() != labels).mean() < 0.02


def test_smooth_upsampling_never_invents_a_third_object(pred):
    """Between white (object 1) and black, a blend must not decode as object 2's colour (255,255,127)."""
    colors = palette(2)
    labels = np.zeros((64, 64), np.int64)
    labels[:, 32:] = 1
    painted = pred.encode_masks([labels], colors)
    up, _ = pred.decode(painted, colors, out_size=(200, 203), resize="smooth")
    assert set(np.unique(up.numpy())) == {0, 1}


def test_predict_batches_equal_single_and_keep_sizes(sample, pred):
    img, labels = sample
    rng = np.random.default_rng(1)
    queries = [(rng.random((50 + 10 * i, 70, 3)) * 255).astype(np.uint8) for i in range(3)]
    batched = pred.predict(queries, [img], [labels], batch_size=3)
    single = [pred.predict([q], [img], [labels], batch_size=1)[0] for q in queries]
    for q, a, b in zip(queries, batched, single):
        assert a.labels.shape == q.shape[:2] and a.distance.shape == q.shape[:2]
        assert np.array_equal(a.labels, b.labels)
        assert np.allclose(a.distance, b.distance, atol=1e-3)
        assert set(np.unique(a.labels)) <= {0, 1, 2}


def test_label_resize_is_nearest_exact_for_ids_of_any_size(pred):
    """resize_labels indexes (PIL's pixel-centre rule) instead of interpolating floats: ids above 2**24 survive."""
    rng = np.random.default_rng(0)
    for shape in [(48, 64), (480, 854), (17, 5), (13, 200)]:
        labels = rng.integers(0, 5, size=shape)
        ref = F.interpolate(torch.from_numpy(labels).float()[None, None], size=pred.image_size, mode="nearest-exact")
        assert np.array_equal(pred.resize_labels(labels), ref[0, 0].long().numpy()), shape
        assert np.array_equal(pred.resize_labels(labels * 2 ** 40) // 2 ** 40, ref[0, 0].long().numpy())


def test_separate_mode_drops_the_prompts_an_object_is_absent_from(pred):
    """absent_prompts="drop": each object's pass sees only the prompts that show it (checked against a call
    with those prompts alone); "keep" is every prompt for every object; an object no prompt shows sees all."""
    h, w = pred.image_size
    rng = np.random.default_rng(0)
    queries = pred.preprocess_images([rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2)])
    prompts = pred.preprocess_images([rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(3)])
    labels = torch.zeros(3, h, w, dtype=torch.long)
    labels[0, :8, :8] = 1  # object 1 on prompts 0 and 1, object 2 on prompt 0 only, object 3 on none
    labels[1, 8:16, :8] = 1
    labels[0, 16:, 16:] = 2
    ids = [1, 2, 3]

    def alone(use, obj):
        return pred.scores(queries, prompts[use], labels[use], [obj], mode="separate")[:, 1]

    drop = pred.scores(queries, prompts, labels, ids, mode="separate", absent_prompts="drop")
    keep = pred.scores(queries, prompts, labels, ids, mode="separate")
    assert drop.shape == keep.shape == (2, 4, h, w)
    assert torch.allclose(drop[:, 1], alone([0, 1], 1), atol=1e-5)
    assert torch.allclose(drop[:, 2], alone([0], 2), atol=1e-5)
    assert torch.allclose(drop[:, 3], alone([0, 1, 2], 3), atol=1e-5)
    for i, obj in enumerate(ids):
        assert torch.allclose(keep[:, i + 1], alone([0, 1, 2], obj), atol=1e-5)
    assert not torch.allclose(drop[:, 2], keep[:, 2], atol=1e-3)
    assert torch.allclose(drop[:, 0], 1 - drop[:, 1:].max(dim=1).values)
    with pytest.raises(ValueError, match="absent_prompts"):
        pred.scores(queries, prompts, labels, ids, mode="separate", absent_prompts="maybe")
