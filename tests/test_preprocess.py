"""Preprocessing in numpy/Pillow equals open_clip's own transform, and every image becomes RGB."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from images import photo
from model import registry
from model.imagefile import ImageError
from model.preprocess import PreprocessConfig, open_image, to_array, to_rgb

SHAPES = [(640, 480), (480, 640), (300, 300), (1000, 90), (100, 60), (225, 224), (223, 511)]


def _open_clip_transform(cfg: dict):
    from open_clip.transform import PreprocessCfg, image_transform_v2

    return image_transform_v2(PreprocessCfg(**cfg), is_train=False)


def _cfg_for(arch: str, tag: str) -> dict:
    import open_clip
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    size = open_clip.get_model_config(arch)["vision_cfg"]["image_size"]
    return merge_preprocess_dict(PreprocessCfg(size=size), open_clip.get_pretrained_cfg(arch, tag))


def _assert_same(cfg: dict, images):
    theirs = _open_clip_transform(cfg)
    ours = PreprocessConfig.from_dict(cfg)
    for img in images:
        expected = theirs(img).numpy()
        got = to_array(img, ours)
        assert got.shape == expected.shape, img.size
        assert np.abs(got - expected).max() < 1e-5, img.size


@pytest.mark.parametrize("base", registry.KNOWN, ids=lambda b: b.name)
def test_matches_open_clip_for_every_registered_model(base):
    cfg = _cfg_for(base.architecture, base.pretrained)
    _assert_same(cfg, [photo(w, h, seed=i) for i, (w, h) in enumerate(SHAPES)])


@pytest.mark.parametrize("extra", [
    {"resize_mode": "longest", "fill_color": 0},
    {"resize_mode": "longest", "fill_color": 127},
    {"resize_mode": "squash"},
    {"interpolation": "bilinear"},
    {"size": (224, 160)},
    {"size": 256, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)},
], ids=str)
def test_matches_open_clip_for_every_resize_mode(extra):
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    _assert_same(merge_preprocess_dict(PreprocessCfg(), extra), [photo(w, h, seed=i) for i, (w, h) in enumerate(SHAPES)])


def _roundtrip(img: Image.Image, fmt: str, **kw) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    buf.seek(0)
    return Image.open(buf)


def test_every_colour_mode_becomes_rgb():
    rgb = photo(64, 48)
    rgba = rgb.convert("RGBA")
    rgba.putpixel((0, 0), (10, 20, 30, 0))  # fully transparent
    grey16 = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    floats = Image.fromarray(np.full((8, 8), 0.5, np.float32), "F")
    palette_t = _roundtrip(rgba.convert("P"), "PNG", transparency=0)
    cases = {
        "P": rgb.convert("P"), "RGBA": rgba, "LA": rgba.convert("LA"), "L": rgb.convert("L"), "1": rgb.convert("1"),
        "CMYK": rgb.convert("CMYK"), "I;16": _roundtrip(grey16, "PNG"), "F": floats, "P+transparency": palette_t,
        "YCbCr": rgb.convert("YCbCr"), "CMYK JPEG": _roundtrip(rgb.convert("CMYK"), "JPEG"),
    }
    for name, img in cases.items():
        out = to_rgb(img)
        assert out.mode == "RGB" and out.size == img.size, name
    assert to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255), "transparent pixels are laid over white"
    assert to_rgb(cases["I;16"]).getpixel((0, 0)) == (255, 255, 255), "16-bit white stays white"
    assert to_rgb(floats).getpixel((0, 0)) == (128, 128, 128)
    r, g, b = to_rgb(cases["CMYK"]).getpixel((10, 10))
    assert (r, g, b) == rgb.getpixel((10, 10))


def _camera_jpeg(path, w=4032, h=3024, orientation=None):
    img = photo(w // 8, h // 8, seed=3).resize((w, h), Image.Resampling.BILINEAR)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    img.save(path, "JPEG", quality=90, exif=exif.tobytes())
    return path


def test_jpeg_is_decoded_in_draft_mode_then_turned_upright(tmp_path):
    cfg = PreprocessConfig()  # 224 x 224
    path = _camera_jpeg(tmp_path / "camera.jpg", orientation=6)  # stored landscape, shown portrait
    full = open_image(path)
    draft = open_image(path, cfg)
    assert full.size == (3024, 4032), "EXIF orientation applied"
    assert draft.size == (378, 504), "decoded at 1/8 scale and turned upright"
    assert min(draft.size) >= 224, "still covers the model's input"
    # The drafted pixels give (nearly) the same model input as the full decode.
    assert np.abs(to_array(draft, cfg) - to_array(full, cfg)).mean() < 0.02


def test_draft_never_goes_below_the_model_input(tmp_path):
    cfg = PreprocessConfig(size=(256, 256))
    path = tmp_path / "small.jpg"
    photo(600, 400).save(path, quality=90)
    img = open_image(path, cfg)
    assert img.size == (600, 400), "1/2 scale (300 x 200) would be below 256: decoded at full size"


@pytest.mark.parametrize("content, reason", [
    (b"", "not an image"),
    (b"this is a text file, not a photo\n" * 20, "not an image"),
])
def test_unreadable_files_give_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        open_image(path)


def test_truncated_jpeg_gives_a_reason(tmp_path):
    path = tmp_path / "cut.jpg"
    photo(400, 300).save(path, quality=90)
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        open_image(path)


def test_missing_file_gives_a_reason(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        open_image(tmp_path / "nope.png")


def test_decompression_bomb_guard_stays_on(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("L", (3000, 1000)).save(path)  # compresses to a few KB, decodes to 3 MP
    old = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = 1_000_000  # over twice the limit: Pillow refuses to decode it
        with pytest.raises(ImageError, match="too large"):
            open_image(path)
    finally:
        Image.MAX_IMAGE_PIXELS = old
