"""si_jax.editing.masks: boxes/ellipses and specs, user mask files, validation, the label-free auto mask."""
import numpy as np
import pytest
from PIL import Image

from si_jax.editing import masks

RNG = np.random.default_rng(7)


# ---------------------------------------------------------------------------------------------------------------
# simple regions
# ---------------------------------------------------------------------------------------------------------------

def test_box_mask_is_half_open_in_pixel_coordinates():
    m = masks.box_mask(8, 10, 2, 1, 5, 4)  # columns 2..4, rows 1..3
    assert m.shape == (8, 10) and m.dtype == np.float32
    assert m.sum() == 9
    assert m[1, 2] == 1 and m[3, 4] == 1
    assert m[4, 4] == 0 and m[3, 5] == 0 and m[0, 2] == 0 and m[1, 1] == 0
    assert masks.box_mask(4, 4, 0, 0, 4, 4).sum() == 16  # the full image is a valid box primitive


def test_ellipse_mask_hand_counts():
    # pixel centres 3.5 and 4.5 are the only ones within 1 of 4 -> 2 x 2 pixels
    m = masks.ellipse_mask(8, 8, 4, 4, 1, 1)
    assert m.sum() == 4 and m[3:5, 3:5].all()
    # rx = 2, ry = 1: rows 3, 4 (dy^2 = .25), |dx| <= sqrt(.75) * 2 = 1.73 -> columns 2..5
    m = masks.ellipse_mask(8, 8, 4, 4, 2, 1)
    assert m.sum() == 8 and m[3:5, 2:6].all()
    # a large ellipse's area approaches pi * rx * ry; one clipped at the border keeps only the inside part
    assert abs(masks.ellipse_mask(200, 200, 100, 100, 60, 30).sum() - np.pi * 60 * 30) < 0.01 * np.pi * 1800
    clipped = masks.ellipse_mask(20, 20, 0, 10, 5, 5)
    assert clipped[:, :5].sum() > 0 and clipped[:, 5:].sum() == 0


def test_parse_mask_spec_matches_primitives():
    np.testing.assert_array_equal(masks.parse_mask_spec("box:2,1,5,4", 8, 10), masks.box_mask(8, 10, 2, 1, 5, 4))
    np.testing.assert_array_equal(masks.parse_mask_spec(" ellipse: 4, 4.0, 2, 1 ", 8, 8),
                                  masks.ellipse_mask(8, 8, 4, 4, 2, 1))


@pytest.mark.parametrize("spec, match", [
    ("box2,1,5,4", "expected"),
    ("circle:1,2,3,4", "unknown kind"),
    ("box:1,2,3", "exactly 4"),
    ("box:1,2,3,4,5", "exactly 4"),
    ("box:1,,3,4", "exactly 4"),
    ("box:a,b,c,d", "integers"),
    ("box:1.5,0,3,3", "integers"),
    ("ellipse:x,4,2,2", "numbers"),
    ("box:5,0,3,4", "empty or outside"),
    ("box:0,0,11,4", "empty or outside"),
    ("box:-1,0,3,4", "empty or outside"),
    ("box:0,0,10,8", "whole"),
    ("ellipse:4,4,0,1", "radii"),
    ("ellipse:-1,4,2,2", "outside"),
    ("ellipse:5,4,100,100", "whole"),
    ("ellipse:4,4,0.1,0.1", "no pixel"),
    ("ellipse:nan,4,2,2", "finite"),
])
def test_parse_mask_spec_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        masks.parse_mask_spec(spec, 8, 10)


# ---------------------------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------------------------

def _png(path, arr, mode="L"):
    Image.fromarray(arr.astype(np.uint8)).convert(mode).save(path)
    return path


def test_load_single_png_binarises_resizes_and_broadcasts(tmp_path):
    src = np.zeros((4, 4), np.uint8)
    src[1, 2] = 200  # > 127: inside
    src[2, 0] = 100  # <= 127: outside
    m = masks.load_masks(_png(tmp_path / "m.png", src, "RGB"), 3, 8, 8)
    assert m.shape == (3, 8, 8) and m.dtype == np.float32
    want = np.zeros((8, 8), np.float32)
    want[2:4, 4:6] = 1  # nearest-neighbour: each source pixel -> a 2x2 block
    for i in range(3):
        np.testing.assert_array_equal(m[i], want)


def test_load_npz_and_npy_with_resize(tmp_path):
    arr = RNG.uniform(size=(2, 4, 4)).astype(np.float32)  # soft values are kept
    np.savez(tmp_path / "m.npz", masks=arr[..., None])  # [N, h, w, 1]
    np.save(tmp_path / "m.npy", arr)
    want = arr.repeat(2, axis=1).repeat(2, axis=2)
    np.testing.assert_array_equal(masks.load_masks(tmp_path / "m.npz", 2, 8, 8), want)
    np.testing.assert_array_equal(masks.load_masks(str(tmp_path / "m.npy"), 2, 8, 8), want)
    np.testing.assert_array_equal(masks.load_masks(tmp_path / "m.npy", 2, 4, 4), arr)  # no resize needed


def test_load_directory_in_sorted_order(tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    a = np.zeros((6, 6), np.uint8)
    a[0, 0] = 255
    b = np.zeros((6, 6), np.uint8)
    b[5, 5] = 255
    _png(d / "img_01.png", b)
    _png(d / "img_00.png", a)
    (d / "notes.txt").write_text("ignored")
    m = masks.load_masks(d, 2, 6, 6)
    assert m[0, 0, 0] == 1 and m[0].sum() == 1  # img_00 first
    assert m[1, 5, 5] == 1 and m[1].sum() == 1
    with pytest.raises(ValueError, match=r"2 PNG masks for 3 images"):
        masks.load_masks(d, 3, 6, 6)


def test_load_file_problems_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        masks.load_masks(tmp_path / "missing.npz", 1, 4, 4)
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ValueError, match=r"m\.txt.*unsupported"):
        masks.load_masks(tmp_path / "m.txt", 1, 4, 4)
    np.savez(tmp_path / "k.npz", other=np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match=r"k\.npz.*no 'masks'.*other"):
        masks.load_masks(tmp_path / "k.npz", 1, 4, 4)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"bad\.png.*cannot read"):
        masks.load_masks(tmp_path / "bad.png", 1, 4, 4)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad\.npz.*cannot read"):
        masks.load_masks(tmp_path / "bad.npz", 1, 4, 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .png"):
        masks.load_masks(tmp_path / "empty", 1, 4, 4)


# ---------------------------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda: np.zeros((3, 4, 4)), "3 masks for 2 images"),
    (lambda: np.full((2, 4, 4), 1.5), r"\[0, 1\]"),
    (lambda: np.full((2, 4, 4), -0.1), r"\[0, 1\]"),
    (lambda: np.where(np.arange(32).reshape(2, 4, 4) == 20, np.nan, 0.0), "mask 1 contains non-finite"),
    (lambda: np.stack([np.zeros((4, 4)), np.ones((4, 4))]), "mask 1 is all ones"),
    (lambda: np.zeros((2, 4, 5)), "size"),
    (lambda: np.zeros((2, 2, 4, 4)), "shape"),
])
def test_validation_errors_for_files_and_arrays(tmp_path, make, match):
    arr = make()
    with pytest.raises(ValueError, match=match):
        masks.validate_masks(arr, 2, 4, 4)
    path = tmp_path / "bad_masks.npy"
    np.save(path, arr)
    if arr.shape[-2:] == (4, 4):  # from a file (same checks; a wrong size would just be resized)
        with pytest.raises(ValueError, match=r"bad_masks\.npy.*" + match if "shape" not in match else match):
            masks.load_masks(path, 2, 4, 4)


def test_all_ones_png_in_directory_names_the_png(tmp_path):
    _png(tmp_path / "a.png", np.pad(np.full((2, 2), 255), 1))
    _png(tmp_path / "b.png", np.full((4, 4), 255))
    with pytest.raises(ValueError, match=r"b\.png.*all ones"):
        masks.load_masks(tmp_path, 2, 4, 4)


def test_validate_accepts_shapes_and_broadcasts_one_mask():
    one = masks.box_mask(4, 4, 1, 1, 3, 3)
    out = masks.validate_masks(one, 5, 4, 4)  # [H, W] -> shared by all images
    assert out.shape == (5, 4, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out[3], one)
    out = masks.validate_masks(np.stack([one, one * 0.5])[..., None], 2, 4, 4)
    assert out.shape == (2, 4, 4) and out[0].sum() == 4 and out[1].sum() == 2   # soft masks are kept
    with pytest.raises(ValueError, match=r"my_masks: mask 1 is empty \(all zeros\)"):   # like all ones: refused
        masks.validate_masks(np.stack([one, one * 0]).astype(bool), 2, 4, 4, source="my_masks")


# ---------------------------------------------------------------------------------------------------------------
# auto mask
# ---------------------------------------------------------------------------------------------------------------

def test_auto_mask_finds_planted_square_and_dilates_it():
    n, h, w = 2, 24, 24
    orig = RNG.normal(size=(n, h, w, 3)).astype(np.float32)
    edit = orig.copy()
    edit[0, 5:9, 7:11] += 2.0  # a 4x4 change
    edit[0, 18:20, 18:20] += 0.2  # 10% of the peak: below the default relative threshold (20%)
    edit[1] += 1e-7 * RNG.normal(size=(h, w, 3)).astype(np.float32)  # float noise only
    m = np.asarray(masks.auto_mask(orig, edit, dilate=2))
    assert m.shape == (n, h, w) and m.dtype == np.float32
    want = np.zeros((h, w), np.float32)
    want[3:11, 5:13] = 1  # 4x4 grown by 2 pixels on every side -> 8x8
    np.testing.assert_array_equal(m[0], want)
    np.testing.assert_array_equal(m[1], 0.0)
    undilated = np.asarray(masks.auto_mask(orig, edit, dilate=0))[0]
    assert undilated.sum() == 16 and undilated[5:9, 7:11].all()
    # clipped at the border
    edge = orig.copy()
    edge[:, 0:2, 0:2] += 1.0
    np.testing.assert_array_equal(np.asarray(masks.auto_mask(orig, edge, dilate=3)).sum((1, 2)), [25, 25])


def test_auto_mask_zero_difference_and_quantile_mode():
    orig = RNG.normal(size=(1, 16, 16, 3)).astype(np.float32)
    m = np.asarray(masks.auto_mask(orig, orig))
    assert np.isfinite(m).all() and m.sum() == 0
    edit = orig + np.linspace(0, 1, 256, dtype=np.float32).reshape(1, 16, 16, 1)  # every pixel distinct
    q = np.asarray(masks.auto_mask(orig, edit, quantile=0.75, dilate=0))
    assert 60 <= q.sum() <= 64 and q[0, -1, -1] == 1 and q[0, 0, 0] == 0
    np.testing.assert_array_equal(np.asarray(masks.auto_mask(orig, orig, quantile=0.75)), 0.0)
    with pytest.raises(ValueError, match="equal shapes"):
        masks.auto_mask(orig, orig[..., :2])


def test_resolve_is_the_one_mask_function_of_every_spec(tmp_path):
    """masks.resolve: box / ellipse / file -> fixed masks picked by position; auto -> auto_mask of the input and
    the S-only edit; part:NAME -> the caller's segmenter on the input and the Z edit (refused without one)."""
    assert [masks.kind_of(s) for s in ("auto", "box:1,1,3,3", "ellipse:4,4,2,2", "part:hair", "m.npy", "box",
                                       "auot")] == ["auto", "box", "ellipse", "part", "file", "file", "file"]
    rng = np.random.default_rng(0)
    img0, img_z, img_s = (rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32) for _ in range(3))
    box = masks.resolve("box:1,1,3,3", 5, 8)
    assert box.from_images is None and box.array.shape == (1, 8, 8)
    np.testing.assert_array_equal(box([4, 0], img0, img_z, img_s), np.stack([masks.box_mask(8, 8, 1, 1, 3, 3)] * 2))
    per_image = np.zeros((3, 8, 8), np.float32)
    for i in range(3):
        per_image[i, i:i + 2, :4] = 1
    np.save(tmp_path / "m.npy", per_image)
    np.testing.assert_array_equal(masks.resolve(str(tmp_path / "m.npy"), 3, 8)([2, 0], img0, img_z, img_s),
                                  per_image[[2, 0]])
    with pytest.raises(ValueError, match="m.npy"):
        masks.resolve(str(tmp_path / "m.npy"), 4, 8)   # 3 masks for 4 images
    auto = masks.resolve("auto", 2, 8)
    assert auto.array is None
    np.testing.assert_array_equal(np.asarray(auto([0, 1], img0, img_z, img_s)),
                                  np.asarray(masks.auto_mask(img0, img_s)))
    with pytest.raises(ValueError, match="needs a segmenter"):
        masks.resolve("part:hair", 2, 8)
    seen = []
    part = masks.resolve("part:hair", 2, 8, lambda spec: seen.append(spec) or (lambda a, b, c: a[..., 0] > b[..., 0]))
    np.testing.assert_array_equal(part([0, 1], img0, img_z, img_s), img0[..., 0] > img_z[..., 0])
    assert seen == ["part:hair"]
