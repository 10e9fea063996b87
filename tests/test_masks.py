"""seggpt.masks: real PNG files in every mode, anti-aliased masks, the SegGPT examples, errors."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from seggpt.colors import davis_palette, random_colors
from seggpt.errors import InputError
from seggpt.masks import ParsedMask, load_mask, object_ids, parse_mask
from vos.data.synthetic import make_clip



def scene(h: int = 72, w: int = 96) -> np.ndarray:
    """Four objects: a disc, two rectangles that touch each other, a tilted ellipse."""
    lab = np.zeros((h, w), np.uint8)
    cv2.circle(lab, (22, 22), 14, 1, -1)
    cv2.rectangle(lab, (45, 8), (85, 33), 2, -1)
    cv2.rectangle(lab, (45, 34), (85, 60), 3, -1)
    cv2.ellipse(lab, (22, 55), (16, 8), 30, 0, 360, 4, -1)
    return lab


def save(path: Path, img: Image.Image) -> Path:
    img.save(path)
    return path


def save_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label maps split the image identically (ids may differ; 0 must match 0)."""
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(set(pairs[0])) == pairs.shape[1] == len(set(pairs[1]))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


# ------------------------------------------------------------------------------ palette / grey


def test_palette_png_keeps_ids_and_palette(tmp_path):
    lab = scene()
    lab[0, :5] = 255  # DAVIS 'void'
    pal = np.random.default_rng(0).integers(0, 256, size=(256, 3), dtype=np.uint8)
    im = Image.fromarray(lab, mode="P")
    im.putpalette(pal.ravel().tolist())
    parsed = load_mask(save(tmp_path / "p.png", im))
    assert isinstance(parsed, ParsedMask)
    assert parsed.labels.dtype == np.int32 and parsed.labels.shape == lab.shape
    np.testing.assert_array_equal(parsed.labels, lab)
    np.testing.assert_array_equal(parsed.palette, pal)
    assert parsed.object_ids == [1, 2, 3, 4, 255]
    assert any("255" in w and "void" in w for w in parsed.warnings)


def test_palette_png_short_palette_is_padded(tmp_path):
    im = Image.fromarray(scene(), mode="P")
    im.putpalette([0, 0, 0, 10, 20, 30, 40, 50, 60])
    parsed = load_mask(save(tmp_path / "short.png", im))
    assert parsed.palette.shape == (256, 3)
    np.testing.assert_array_equal(parsed.palette[1:3], [[10, 20, 30], [40, 50, 60]])
    assert parsed.warnings == []


OBJ = scene() > 0
LA = np.stack([np.full(OBJ.shape, 255, np.uint8), OBJ.astype(np.uint8) * 255], axis=-1)  # the alpha: the object
GREY = {  # name: (an image, its mode in the file, the labels it holds, their ids)
    "grey 0/255 is object 1": (Image.fromarray(OBJ.astype(np.uint8) * 255), "L", OBJ, [1]),  # DAVIS 2016 convention
    "grey index mask, ids as given": (Image.fromarray(scene(), mode="L"), "L", scene(), [1, 2, 3, 4]),
    "one bit": (Image.fromarray(OBJ), "1", OBJ, [1]),
    "16 bit": (Image.fromarray(OBJ.astype(np.uint16) * 65535), "I;16", OBJ, [1]),
    "16-bit index": (Image.fromarray(scene().astype(np.uint16)), "I;16", scene(), [1, 2, 3, 4]),
    "LA: the alpha is the mask": (Image.fromarray(LA, mode="LA"), "LA", OBJ, [1]),
}


@pytest.mark.parametrize("image, mode, labels, ids", GREY.values(), ids=GREY)
def test_grey_pngs_hold_their_objects(tmp_path, image, mode, labels, ids):
    path = save(tmp_path / "m.png", image)
    assert Image.open(path).mode == mode
    parsed = load_mask(path)
    np.testing.assert_array_equal(parsed.labels, labels)
    assert parsed.object_ids == ids and parsed.palette is None and parsed.warnings == []


def test_grey_anti_aliased_is_thresholded(tmp_path):
    hard = (scene() > 0).astype(np.uint8) * 255
    soft = cv2.GaussianBlur(hard, (7, 7), 0)
    assert len(np.unique(soft)) > 20
    parsed = load_mask(save(tmp_path / "aa.png", Image.fromarray(soft)))
    np.testing.assert_array_equal(parsed.labels, (soft >= 128).astype(np.int32))
    assert parsed.warnings == ["anti-aliased L mask thresholded at 128 into 1 object(s)"]


# ------------------------------------------------------------------------------------ colour


def test_rgb_hard_colours_ids_by_colour_value(tmp_path):
    lab = scene()
    colors = np.array([[0, 0, 0], [250, 10, 10], [10, 250, 10], [10, 10, 250], [255, 255, 255]], np.uint8)
    parsed = load_mask(save(tmp_path / "rgb.png", Image.fromarray(colors[lab])))
    assert parsed.warnings == []
    # Sorted by (R, G, B): (10,10,250) < (10,250,10) < (250,10,10) < (255,255,255).
    expected = np.array([0, 3, 2, 1, 4])[lab]
    np.testing.assert_array_equal(parsed.labels, expected)
    np.testing.assert_array_equal(parsed.palette[1:5], colors[[3, 2, 1, 4]])
    # The ids depend on the colours only: another frame with the objects moved agrees.
    moved = load_mask(save(tmp_path / "rgb2.png", Image.fromarray(colors[np.roll(lab, 7, axis=1)])))
    np.testing.assert_array_equal(moved.labels, np.roll(expected, 7, axis=1))


def test_rgb_with_davis_colours_uses_palette_indices(tmp_path):
    lab = scene()
    davis = davis_palette()
    colors = davis[[0, 2, 5, 9, 17]]  # ids 2, 5, 9, 17 in DAVIS terms
    parsed = load_mask(save(tmp_path / "davis_rgb.png", Image.fromarray(colors[lab])))
    np.testing.assert_array_equal(parsed.labels, np.array([0, 2, 5, 9, 17])[lab])
    np.testing.assert_array_equal(parsed.palette[[2, 5, 9, 17]], colors[1:])


def test_rgb_thin_objects_survive_in_clean_masks():
    lab = np.zeros((20, 30), np.uint8)
    lab[5, 2:28] = 1  # a one-pixel line
    lab[12, 12] = 2  # a single pixel
    colors = np.array([[0, 0, 0], [200, 100, 50], [30, 60, 220]], np.uint8)
    parsed = parse_mask(colors[lab], name="thin")
    assert parsed.warnings == []
    assert same_partition(parsed.labels, lab)


@pytest.mark.parametrize("ksize", [3, 5, 9, 15])
@pytest.mark.parametrize(
    "colors",
    [
        [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]],
        [[0, 0, 0], [200, 30, 30], [170, 60, 30], [30, 200, 120], [90, 90, 200]],  # close colours
        [[0, 0, 0], [250, 250, 250], [60, 40, 110], [250, 200, 0], [0, 90, 60]],  # dark ones
        davis_palette()[:5].tolist(),
    ],
    ids=["primaries", "close", "dark", "davis"],
)
def test_rgb_blurred_multi_object_becomes_the_same_objects(tmp_path, ksize, colors):
    lab = scene()
    colors = np.array(colors, np.uint8)
    soft = cv2.GaussianBlur(colors[lab], (ksize, ksize), 0)
    parsed = load_mask(save(tmp_path / "soft.png", Image.fromarray(soft)))
    assert parsed.object_ids == [1, 2, 3, 4]
    assert parsed.warnings and "cleaned to 4 object(s)" in parsed.warnings[0]
    hard = parse_mask(colors[lab], name="hard")
    assert hard.warnings == []
    for i in parsed.object_ids:  # the same ids as the hard mask, and the same regions
        assert iou(parsed.labels == i, hard.labels == i) > (0.97 if ksize <= 9 else 0.9), i
    assert iou(parsed.labels == 0, lab == 0) > 0.97


def test_rgb_jpeg_compressed_mask(tmp_path):
    lab = scene()
    colors = davis_palette()[:5]
    path = tmp_path / "mask.jpg"
    Image.fromarray(colors[lab]).save(path, quality=70)
    parsed = load_mask(path)
    assert parsed.object_ids == [1, 2, 3, 4]  # DAVIS colours recovered despite compression
    for i in parsed.object_ids:
        assert iou(parsed.labels == i, lab == i) > 0.9


def test_rgba_transparent_background_and_soft_alpha(tmp_path):
    lab = scene()
    rgba = np.zeros(lab.shape + (4,), np.uint8)
    rgba[..., :3] = 255  # white everywhere: only alpha says where objects are
    rgba[..., :3][lab == 1] = (255, 0, 0)
    rgba[..., :3][lab == 2] = (0, 0, 255)
    rgba[..., 3] = np.where(np.isin(lab, (1, 2)), 255, 0)
    parsed = load_mask(save(tmp_path / "rgba.png", Image.fromarray(rgba, mode="RGBA")))
    assert parsed.warnings == []
    np.testing.assert_array_equal(parsed.labels, np.array([0, 2, 1, 0, 0])[lab])  # blue < red
    rgba[..., 3] = cv2.GaussianBlur(rgba[..., 3], (7, 7), 0)  # feathered selection
    soft = load_mask(save(tmp_path / "rgba_soft.png", Image.fromarray(rgba, mode="RGBA")))
    assert soft.object_ids == [1, 2] and soft.warnings
    assert iou(soft.labels == 1, lab == 2) > 0.9 and iou(soft.labels == 2, lab == 1) > 0.9


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12))
def test_rgb_hard_masks_round_trip(seed, n):
    rng = np.random.default_rng(seed)
    lab = np.zeros((40, 48), np.uint8)
    for k in range(1, n + 1):  # random rectangles; later ones may cover earlier ones
        y, x = rng.integers(0, 36), rng.integers(0, 44)
        lab[y : y + rng.integers(2, 20), x : x + rng.integers(2, 20)] = k
    colors = random_colors(n, rng, min_distance=40)
    parsed = parse_mask(colors[lab], name="random")
    assert parsed.warnings == []
    assert same_partition(parsed.labels, lab)
    for i in parsed.object_ids:
        np.testing.assert_array_equal(parsed.palette[i], colors[lab[parsed.labels == i][0]])


# ------------------------------------------------------------------------ real SegGPT examples


def test_seggpt_example_targets_are_one_object(shared_data):
    targets = sorted((shared_data / "seggpt-examples").glob("*_target.png"))
    if not targets:
        pytest.skip("../shared/data/seggpt-examples is absent")
    for path in targets:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        thresholded = rgb.mean(axis=-1) > 127
        parsed = load_mask(path)
        assert parsed.object_ids == [1], path.name
        assert abs(int((parsed.labels == 1).sum()) - int(thresholded.sum())) <= 0.02 * thresholded.sum()
        assert parsed.warnings, path.name  # anti-aliased: the user is told
        # The same mask painted orange goes through the colour cleaner: still one object.
        orange = np.rint(rgb[..., :1] / 255.0 * np.array([255, 160, 40])).astype(np.uint8)
        coloured = parse_mask(orange, name=path.name)
        assert coloured.object_ids == [1], path.name
        assert "cleaned to 1 object(s)" in coloured.warnings[0]
        assert iou(coloured.labels == 1, thresholded) > 0.97, path.name


def test_real_davis_annotations(shared_data):
    train = shared_data / "davis2016-train-240p" / "Annotations" / "240p" / "bmx-bumps"
    val = shared_data / "davis2016-val-480p" / "Annotations" / "480p" / "blackswan"
    if not (train.is_dir() and val.is_dir()):
        pytest.skip("../shared/data DAVIS folders are absent")
    palette_png = load_mask(train / "00000.png")  # DAVIS 2017 convention: palette PNG, id 1
    assert palette_png.object_ids == [1] and palette_png.palette is not None
    np.testing.assert_array_equal(palette_png.palette[1], davis_palette()[1])
    grey = load_mask(val / "00000.png")  # DAVIS 2016 convention: L, 0/255
    np.testing.assert_array_equal(grey.labels, np.asarray(Image.open(val / "00000.png")) > 0)
    with pytest.raises(InputError, match="holds no object"):  # the object is out of view in this frame
        load_mask(train / "00060.png")
    assert load_mask(train / "00060.png", allow_empty=True).object_ids == []


# ------------------------------------------------------------------------------------ arrays


def test_arrays():
    lab = scene().astype(np.int64)
    np.testing.assert_array_equal(parse_mask(lab).labels, lab)
    np.testing.assert_array_equal(parse_mask(lab.astype(np.uint8) * 60).labels, lab * 60)  # as given
    np.testing.assert_array_equal(parse_mask(lab > 0).labels, lab > 0)
    np.testing.assert_array_equal(parse_mask(lab.astype(np.float32)).labels, lab)
    np.testing.assert_array_equal(parse_mask(lab[..., None]).labels, lab)
    rgb = np.zeros(lab.shape + (3,), np.uint8)
    rgb[lab == 3] = (0, 128, 0)
    np.testing.assert_array_equal(parse_mask(rgb).labels, np.where(lab == 3, 2, 0))  # DAVIS id 2


def test_object_ids():
    lab = np.array([[0, 3, 3], [1, 0, 7]])
    assert object_ids(lab) == [1, 3, 7]


# ------------------------------------------------------------------------------------ errors


def _truncated(folder: Path) -> Path:
    good = save(folder / "good.png", Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)))
    (folder / "cut.png").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return folder / "cut.png"


def _many_colours(folder: Path) -> Path:
    """300 well separated colours in 4x4 blocks: too many objects as an RGB file, too."""
    grid = np.stack(np.meshgrid(*[np.arange(7) * 42] * 3, indexing="ij"), axis=-1).reshape(-1, 3)[1:301]
    blocks = np.kron(np.arange(300).reshape(15, 20), np.ones((4, 4), np.int64))
    return save(folder / "many.png", Image.fromarray(grid[blocks].astype(np.uint8)))


BAD_MASKS = [  # (id, call(tmp_path), regular expressions the one-line message holds ({tmp}: the folder))
    ("missing file", lambda p: load_mask(p / "nope.png"), ["nope.png", "no such file"]),
    ("a folder", lambda p: load_mask(p), ["{tmp}"]),
    ("not an image", lambda p: load_mask(save_text(p / "notes.png", "this is not a PNG\n")), ["notes.png"]),
    ("truncated", lambda p: load_mask(_truncated(p)), ["cut.png"]),
    ("299 ids", lambda p: parse_mask(np.arange(300, dtype=np.int32).reshape(15, 20), name="many.npy"),
     ["many.npy", "299 objects"]),
    ("300 colours", lambda p: load_mask(_many_colours(p)), ["many.png"]),
    ("negative id", lambda p: parse_mask(np.array([[0, -1]]), name="bad.npy"), ["bad.npy: negative"]),
    ("id 256", lambda p: parse_mask(np.array([[0, 256]]), name="bad.npy"), ["bad.npy: object id 256"]),
    ("fractions", lambda p: parse_mask(np.array([[0.0, 0.5]]), name="prob.npy"), ["non-integer"]),
    ("5 channels", lambda p: parse_mask(np.zeros((2, 3, 5), np.uint8), name="x"), ["shape"]),
    ("float colours", lambda p: parse_mask(np.zeros((2, 3, 3), np.float32), name="x"), ["uint8"]),
    ("a list", lambda p: parse_mask([[0, 1]], name="list"), ["PIL image or numpy array"]),
]


@pytest.mark.parametrize("call, words", [b[1:] for b in BAD_MASKS], ids=[b[0] for b in BAD_MASKS])
def test_bad_masks_are_one_line(tmp_path, call, words):
    with pytest.raises(InputError) as e:
        call(tmp_path)
    message = str(e.value)
    assert "\n" not in message, message
    for w in words:
        assert re.search(w.replace("{tmp}", re.escape(str(tmp_path))), message), (w, message)


def test_empty_mask_is_an_error_unless_allowed(tmp_path):
    path = save(tmp_path / "empty.png", Image.fromarray(np.zeros((10, 12), np.uint8)))
    with pytest.raises(InputError, match="holds no object") as e:
        load_mask(path)
    assert "empty.png" in str(e.value) and "\n" not in str(e.value)
    parsed = load_mask(path, allow_empty=True)
    assert parsed.object_ids == [] and parsed.labels.shape == (10, 12)
    with pytest.raises(InputError, match="clear.png: mask holds no object"):
        parse_mask(np.zeros((4, 4, 4), np.uint8), name="clear.png")  # fully transparent RGBA


def _grid_of_colours(n: int, cell: int = 12) -> np.ndarray:
    """n distinct, well separated flat colours (none black), one square each."""
    rng = np.random.default_rng(0)
    side = int(np.ceil(np.sqrt(n)))
    img = np.zeros((side * cell, side * cell, 3), np.uint8)
    keys = rng.choice(np.arange(1, 256 ** 3), n, replace=False)
    for i, k in enumerate(keys):
        y, x = divmod(i, side)
        img[y * cell:(y + 1) * cell, x * cell:(x + 1) * cell] = [(k >> 16) & 255, (k >> 8) & 255, k & 255]
    return img


def test_a_clean_mask_of_more_colours_than_objects_is_refused_not_merged():
    """256 distinct colours were 'cleaned to 128 objects' and the run went on."""
    with pytest.raises(InputError, match="256 colours, at most 255 objects"):
        parse_mask(_grid_of_colours(256), name="many.png")
    assert len(parse_mask(_grid_of_colours(255), name="ok.png").object_ids) == 255


@pytest.mark.parametrize("grey", [False, True])
def test_a_photo_given_as_the_mask_is_refused(grey):
    """A photo given as the mask became 22 objects. A frame of our generator (textured, like a photo)."""
    frames, _ = make_clip(3, 1, size=(120, 160), num_objects=2)
    image = Image.fromarray(frames[0])
    with pytest.raises(InputError, match="photo.png: does not look like a mask"):
        parse_mask(image.convert("L") if grey else image, name="photo.png")
