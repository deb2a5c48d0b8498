"""Small real images made by the tests: photo-like gradients and shapes, in every colour mode."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: smooth gradients, shapes and a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([
        127 + 100 * np.sin(x / (w / (2 + rng.random() * 3)) + rng.random() * 6),
        127 + 100 * np.cos(y / (h / (2 + rng.random() * 3)) + rng.random() * 6),
        127 + 100 * np.sin((x + y) / ((w + h) / (3 + rng.random() * 4))),
    ], axis=-1)
    base += rng.normal(0, 6, base.shape)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 2)), int(rng.integers(0, h - 2))
        x1, y1 = x0 + int(rng.integers(1, max(2, w // 3))), y0 + int(rng.integers(1, max(2, h // 3)))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0, x1, y1], fill=colour)
    return img


def dng(path, preview: Image.Image, raw_size: tuple[int, int] = (96, 64)) -> None:
    """A minimal valid DNG: a JPEG preview in IFD0 (as cameras embed it) and a 16-bit Bayer raw in a SubIFD."""
    import io
    import struct

    buf = io.BytesIO()
    preview.save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    rw, rh = raw_size
    raw = np.random.default_rng(0).integers(0, 4095, (rh, rw)).astype("<u2").tobytes()
    short, long_, byte, ascii_ = 3, 4, 1, 2

    def ifd(entries, offset, extra_at):
        """entries: (tag, type, values); returns (ifd bytes, extra data bytes)."""
        body, extra = b"", b""
        for tag, kind, values in sorted(entries):
            if kind == ascii_:
                values = values.encode() + b"\0"
                count, packed = len(values), values
            else:
                values = values if isinstance(values, (list, tuple)) else [values]
                fmt = {byte: "B", short: "H", long_: "I"}[kind]
                count, packed = len(values), struct.pack("<" + fmt * len(values), *values)
            if len(packed) <= 4:
                body += struct.pack("<HHI", tag, kind, count) + packed.ljust(4, b"\0")
            else:
                body += struct.pack("<HHI", tag, kind, count) + struct.pack("<I", extra_at + len(extra))
                extra += packed + (b"\0" if len(packed) % 2 else b"")
        return struct.pack("<H", len(entries)) + body + struct.pack("<I", 0), extra

    # Layout: header | IFD0 | IFD0 extra | IFD1 | IFD1 extra | jpeg | raw
    n0, n1 = 16, 12
    ifd0_at = 8
    ifd0_extra_at = ifd0_at + 2 + 12 * n0 + 4
    ifd0_extra_len = 200
    ifd1_at = ifd0_extra_at + ifd0_extra_len
    ifd1_extra_at = ifd1_at + 2 + 12 * n1 + 4
    ifd1_extra_len = 64
    jpeg_at = ifd1_extra_at + ifd1_extra_len
    raw_at = jpeg_at + len(jpeg) + (len(jpeg) % 2)
    w, h = preview.size
    ifd0, extra0 = ifd([
        (254, long_, 1), (256, long_, w), (257, long_, h), (258, short, [8, 8, 8]), (259, short, 7),
        (262, short, 6), (271, ascii_, "Glimpse"), (272, ascii_, "TestCam"), (273, long_, jpeg_at),
        (277, short, 3), (278, long_, h), (279, long_, len(jpeg)), (330, long_, ifd1_at),
        (50706, byte, [1, 4, 0, 0]), (50707, byte, [1, 1, 0, 0]), (50708, ascii_, "Glimpse TestCam"),
    ], ifd0_at, ifd0_extra_at)
    ifd1, extra1 = ifd([
        (254, long_, 0), (256, long_, rw), (257, long_, rh), (258, short, 16), (259, short, 1),
        (262, short, 32803), (273, long_, raw_at), (277, short, 1), (278, long_, rh), (279, long_, len(raw)),
        (33421, short, [2, 2]), (33422, byte, [0, 1, 1, 2]),
    ], ifd1_at, ifd1_extra_at)
    assert len(extra0) <= ifd0_extra_len and len(extra1) <= ifd1_extra_len
    data = (b"II*\0" + struct.pack("<I", ifd0_at) + ifd0 + extra0.ljust(ifd0_extra_len, b"\0")
            + ifd1 + extra1.ljust(ifd1_extra_len, b"\0") + jpeg + (b"\0" if len(jpeg) % 2 else b"") + raw)
    with open(path, "wb") as f:
        f.write(data)


def malformed_mpo(path, seed: int = 1) -> None:
    """A two-frame MPO whose index lacks its image count: Pillow reads it as a JPEG, with a UserWarning."""
    import io

    buf = io.BytesIO()
    photo(64, 48, seed=seed).save(buf, "MPO", save_all=True, append_images=[photo(64, 48, seed=seed + 1)])
    data = bytearray(buf.getvalue())
    start = data.find(b"MPF\x00")
    tag = data.find(b"\x01\xb0", start)  # little-endian tag 0xB001, the number of images
    data[tag:tag + 2] = b"\x09\xb0"
    with open(path, "wb") as f:
        f.write(bytes(data))
