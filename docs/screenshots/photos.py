"""Real photographs for the README's screenshots, from Debian packages (no network beyond the mirror).

    python docs/screenshots/photos.py [FOLDER]     (default /tmp/glimpse-real-photos)

Downloads the wallpaper packages of GNOME, MATE and Plasma and GCompris's data (`apt-get download`,
unpacked with `dpkg -x`, nothing installed), keeps the photographs (no drawings with transparent
backgrounds, no abstract patterns), scales each so its long side is at least 1600 px, and writes them
as JPEGs into four albums, each with an EXIF date spread over 13 months, so the library has months to
browse. GCompris keeps its pictures in Qt resource files: PySide6 reads them. About 220 photos.
"""
from __future__ import annotations

import datetime as dt
import glob
import os
import random
import shutil
import subprocess
import sys
import tempfile

PACKAGES = ["gnome-backgrounds", "mate-backgrounds", "plasma-workspace-wallpapers", "gcompris-qt-data"]
GCOMPRIS = ("lang", "explore_monuments", "categorization", "erase", "explore_world_animals",
            "explore_farm_animals", "details")
NOT_PHOTOS = ("2004default", "analogpattern", "Painting-Colors", "rhythm", "string", "firstgeneration", "Picture_")
ALBUMS = ["Holidays", "Family", "Around town", "Nature"]
photos_app: list = []


def unpack(work: str) -> str:
    root = os.path.join(work, "x")
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=work, check=True)
    for deb in glob.glob(os.path.join(work, "*.deb")):
        subprocess.run(["dpkg", "-x", deb, root], check=True)
    return root


def gcompris_pictures(root: str, out: str) -> list[str]:
    from PySide6.QtCore import QCoreApplication, QDirIterator, QFile, QResource

    if QCoreApplication.instance() is None:  # Qt's resources want an application
        photos_app.append(QCoreApplication([]))
    for rcc in glob.glob(os.path.join(root, "usr/share/gcompris-qt/rcc/*.rcc")):
        QResource.registerResource(rcc)
    found, it = [], QDirIterator(":/", QDirIterator.IteratorFlag.Subdirectories)
    os.makedirs(out, exist_ok=True)
    while it.hasNext():
        path = it.next()
        parts = path.split("/")
        if not path.lower().endswith((".jpg", ".jpeg", ".webp", ".png")) or len(parts) < 5 or parts[4] not in GCOMPRIS:
            continue
        f = QFile(path)
        f.open(QFile.OpenModeFlag.ReadOnly)
        data = bytes(f.readAll())
        if len(data) > 25_000:
            found.append(os.path.join(out, "__".join(parts[4:])))
            with open(found[-1], "wb") as w:
                w.write(data)
    return found


def sources(root: str, work: str) -> list[str]:
    share = os.path.join(root, "usr/share")
    found = [p for p in glob.glob(share + "/backgrounds/*.jpg") + glob.glob(share + "/backgrounds/mate/nature/*.jpg")
             if not any(k in p for k in NOT_PHOTOS)]
    for folder in sorted(glob.glob(share + "/wallpapers/*/contents/images")):
        sizes = sorted(glob.glob(folder + "/*"), key=os.path.getsize)
        found += sizes[-1:]  # the largest of each Plasma wallpaper
    return found + gcompris_pictures(root, os.path.join(work, "gcompris"))


def is_drawing(img) -> bool:
    """A cut-out drawing: more than 3% of it transparent."""
    if "A" not in img.getbands() and img.mode != "P":
        return False
    alpha = img.convert("RGBA").getchannel("A").resize((64, 64))
    return sum(alpha.histogram()[:250]) > 64 * 64 * 0.03


def main(out: str) -> int:
    from PIL import Image

    random.seed(7)
    shutil.rmtree(out, ignore_errors=True)
    start, written = dt.datetime(2024, 1, 5), 0
    with tempfile.TemporaryDirectory() as work:
        for i, path in enumerate(sources(unpack(work), work)):
            img = Image.open(path)
            if is_drawing(img) or min(img.size) < 200:
                continue
            img = img.convert("RGB")
            if max(img.size) < 1600:
                scale = 1600 / max(img.size)
                img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
            taken = start + dt.timedelta(days=random.uniform(0, 400), hours=random.uniform(8, 20))
            exif = Image.Exif()
            exif[0x0132] = taken.strftime("%Y:%m:%d %H:%M:%S")
            exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
            album = os.path.join(out, ALBUMS[i % len(ALBUMS)])
            os.makedirs(album, exist_ok=True)
            name = os.path.splitext(os.path.basename(path))[0].split("__")[-1]
            img.save(os.path.join(album, f"{taken:%Y%m%d}_{name}.jpg"), quality=88, exif=exif)
            written += 1
    print(f"{written} photographs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/glimpse-real-photos"))
