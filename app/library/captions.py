"""Captions the user already wrote: embedded metadata, XMP and Google Takeout sidecars, caption files, album names.

Readers only: each returns a `Caption` (or None / an empty list) and never raises on a broken file.
Originals are only ever opened for reading. No Qt here.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from PIL import Image, IptcImagePlugin

import model.imagefile  # noqa: F401  registers the HEIC opener with Pillow

# Where a caption came from.
XMP, IPTC, EXIF = "xmp", "iptc", "exif"
XMP_SIDECAR, TAKEOUT, ALBUM = "xmp-sidecar", "takeout", "album"
CAPTIONS_CSV, METADATA_CSV, METADATA_JSONL = "captions.csv", "metadata.csv", "metadata.jsonl"
SOURCES = (XMP, IPTC, EXIF, XMP_SIDECAR, TAKEOUT, CAPTIONS_CSV, METADATA_CSV, METADATA_JSONL, ALBUM)

MAX_SIDECAR = 8 << 20  # bytes; a bigger "sidecar" is not one
MAX_CAPTION_FILE = 256 << 20  # bytes; a folder's captions.csv / metadata.* may list many thousands of photos
MAX_TEXT = 2000  # characters kept of one caption

_DC = "{http://purl.org/dc/elements/1.1/}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_IMAGE_DESCRIPTION = 270
_XMP_TIFF_TAG = 700
_IPTC_CAPTION, _IPTC_CHARSET = (2, 120), (1, 90)


@dataclass(frozen=True)
class Caption:
    path: str  # the photo
    text: str
    source: str  # one of SOURCES


# Camera firmware writes these into ImageDescription; they describe nothing.
BOILERPLATE = frozenset(s.casefold() for s in (
    "OLYMPUS DIGITAL CAMERA", "SONY DSC", "DCIM", "SAMSUNG", "SAMSUNG CAMERA PICTURES", "DIGITAL CAMERA",
    "KODAK Digital Still Camera", "Digital Still Camera", "MINOLTA DIGITAL CAMERA", "Created with GIMP",
    "default", "image", "picture", "photo", "camera", "untitled", "description", "no description",
))
_MAKERS = frozenset((
    "OLYMPUS", "SONY", "SAMSUNG", "CANON", "NIKON", "PENTAX", "KODAK", "FUJIFILM", "FUJI", "PANASONIC",
    "LUMIX", "MINOLTA", "KONICA", "CASIO", "RICOH", "LEICA", "SIGMA", "HUAWEI", "XIAOMI", "LG", "HTC",
    "MOTOROLA", "NOKIA", "APPLE", "GOOGLE", "HASSELBLAD", "SANYO", "VIVITAR", "AGFA", "GOPRO", "DJI",
))
# Words of camera model names and firmware strings ("CANON EOS 5D MARK III", "SONY DSC", "NIKON COOLPIX").
_MODEL_WORDS = frozenset((
    "DSC", "DIGITAL", "CAMERA", "STILL", "COOLPIX", "POWERSHOT", "EOS", "IXUS", "ELPH", "REBEL", "CYBER", "SHOT",
    "CYBERSHOT", "ALPHA", "NEX", "FINEPIX", "EXILIM", "OPTIO", "EASYSHARE", "DIMAGE", "STYLUS", "PEN", "OM", "MJU",
    "GALAXY", "IPHONE", "PIXEL", "PHONE", "MOBILE", "HERO", "BLACK", "SILVER", "MAVIC", "PHANTOM", "PRO", "MAX",
    "PLUS", "MINI", "ULTRA", "LITE", "MARK", "II", "III", "IV", "CORPORATION", "CORP", "CO", "LTD", "INC",
    "IMAGING", "OPTICAL", "ELECTRONICS", "PICTURES", "DCIM",
))
_IMAGE_FILE = re.compile(
    r"\.(jpe?g|jpe|jfif|png|gif|webp|tiff?|bmp|heic|heif|hif|avif|dng|cr2|cr3|nef|arw|orf|rw2|raf|mp4|mov)$", re.I)
# Names cameras and phones give files: IMG_1234, DSC01234, DSCF1234, PXL_20190707_123456789, 20190707_123456.
_CAMERA_NAME = re.compile(r"^(img|dsc[fn]?|dscf|pxl|mvimg|p|pict?|sam|cimg|gopr|dji|wp|screenshot)?"
                          r"[\s_-]?[\d_.-]{3,}(\w{0,12})?$", re.I)


def _clean(text) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        return ""
    return " ".join(text.replace("\x00", " ").split())[:MAX_TEXT]


def is_file_name(text: str) -> bool:
    """True for a text that is only a file name ("IMG_1234.JPG", "DSC01234", "PXL_20190707_123456789")."""
    t = text.strip()
    return bool(t) and (bool(_IMAGE_FILE.search(t)) or bool(_CAMERA_NAME.match(t)))


def is_boilerplate(text: str) -> bool:
    """Blank, camera firmware text, an all-caps camera-maker string, or only a file name."""
    t = _clean(text)
    if not t or t.casefold() in BOILERPLATE or not any(c.isalnum() for c in t):
        return True
    words = re.findall(r"[A-Za-z0-9]+", t)
    if t == t.upper() and any(w in _MAKERS for w in words) and all(_model_word(w) for w in words):
        return True  # "SONY DSC", "NIKON COOLPIX P900", "CANON EOS 5D"; not "MOUNT FUJI AT SUNRISE"
    return is_file_name(t)


def _model_word(word: str) -> bool:
    """A maker, a model word, or a model number ("D750", "5D", "X100V", "S")."""
    return word in _MAKERS or word in _MODEL_WORDS or any(c.isdigit() for c in word) or len(word) == 1


def _caption(path: str, text, source: str) -> Caption | None:
    t = _clean(text)
    if is_boilerplate(t) or t.casefold() in (os.path.basename(path).casefold(),
                                             os.path.splitext(os.path.basename(path))[0].casefold()):
        return None
    return Caption(path, t, source)


# -- XMP ---------------------------------------------------------------------------------------------

def xmp_description(packet) -> str | None:
    """dc:description from an XMP packet (bytes or str): the x-default entry, else the first one."""
    if isinstance(packet, bytes):
        packet = packet.decode("utf-8", "replace")
    if not isinstance(packet, str) or "description" not in packet:
        return None
    if "<!DOCTYPE" in packet or "<!ENTITY" in packet:
        return None  # XMP never needs them; entity tricks are refused
    for open_tag, close_tag in (("<x:xmpmeta", "</x:xmpmeta>"), ("<rdf:RDF", "</rdf:RDF>")):
        start, end = packet.find(open_tag), packet.rfind(close_tag)
        if 0 <= start < end:
            break
    else:
        return None
    try:
        root = ET.fromstring(packet[start:end + len(close_tag)])
    except ET.ParseError:
        return None
    for node in root.iter():
        if node.tag == _DC + "description":
            items = list(node.iter(_RDF + "li"))
            for li in items:
                if li.get(_XML_LANG, "").lower() == "x-default" and _clean(li.text):
                    return li.text
            for li in items:
                if _clean(li.text):
                    return li.text
            if not items and _clean(node.text):
                return node.text
        elif node.get(_DC + "description"):  # written as an attribute of rdf:Description
            return node.get(_DC + "description")
    return None


def _xmp_packet(img: Image.Image):
    info = img.info
    for key in ("xmp", "XML:com.adobe.xmp"):
        if info.get(key):
            return info[key]
    tags = getattr(img, "tag_v2", None)
    return tags.get(_XMP_TIFF_TAG) if tags is not None else None


# -- Embedded ----------------------------------------------------------------------------------------

def _iptc_caption(img: Image.Image):
    info = IptcImagePlugin.getiptcinfo(img) or {}
    value = info.get(_IPTC_CAPTION)
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, bytes):
        return None
    charset = info.get(_IPTC_CHARSET) or b""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("utf-8" if b"%G" in charset else "cp1252", "replace")


def _exif_caption(img: Image.Image):
    value = img.getexif().get(_IMAGE_DESCRIPTION)
    if isinstance(value, str):
        try:  # Pillow reads EXIF ASCII as Latin-1; many tools write UTF-8 there
            value = value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return value


def embedded(path: str) -> Caption | None:
    """The caption inside the photo: XMP dc:description, else IPTC Caption-Abstract, else EXIF ImageDescription."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:  # lazy: the pixels are never decoded
                for source, read in ((XMP, lambda: xmp_description(_xmp_packet(img))),
                                     (IPTC, lambda: _iptc_caption(img)), (EXIF, lambda: _exif_caption(img))):
                    try:
                        found = _caption(path, read(), source)
                    except Exception:  # one damaged block never hides the others
                        found = None
                    if found:
                        return found
    except Exception:
        return None
    return None


# -- Sidecars ----------------------------------------------------------------------------------------

def _read_small(path: str, limit: int = MAX_SIDECAR) -> bytes | None:
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > limit:
            return None
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def sidecar_paths(path: str) -> list[str]:
    """Where XMP sidecars of a photo may be: IMG_1.jpg.xmp (darktable, digiKam), IMG_1.xmp (Lightroom)."""
    stem = os.path.splitext(path)[0]
    return [path + ".xmp", path + ".XMP", stem + ".xmp", stem + ".XMP"]


def sidecar(path: str) -> Caption | None:
    """dc:description from the photo's XMP sidecar."""
    seen = set()
    for candidate in sidecar_paths(path):
        data = _read_small(candidate)
        if data is None or data in seen:
            continue
        seen.add(data)
        found = _caption(path, xmp_description(data), XMP_SIDECAR)
        if found:
            return found
    return None


_TAKEOUT_LIMIT = 51  # Takeout cuts JSON file names to 51 characters, ".json" included
_SUPPLEMENTAL = ".supplemental-metadata"
_COPY = re.compile(r"^(.*)(\(\d+\))(\.[^.]*)$")  # IMG_1(1).jpg
_EDITED = re.compile(r"-(edited|bearbeitet|modifié|editado|modificato|bewerkt)(\.[^.]*)$", re.I)


def takeout_paths(path: str) -> list[str]:
    """The names Google Takeout gives a photo's JSON sidecar, most likely first."""
    folder, name = os.path.split(path)
    bases, copy = [name], ""
    m = _COPY.match(name)
    if m:  # IMG_1(1).jpg -> IMG_1.jpg(1).json
        bases, copy = [m.group(1) + m.group(3)], m.group(2)
    edited = _EDITED.sub(r"\2", bases[0])
    if edited != bases[0]:  # IMG_1-edited.jpg -> IMG_1.jpg.json
        bases.append(edited)
    names = []
    for base in bases:
        for suffix in ("", _SUPPLEMENTAL):
            full = base + suffix
            if len(full + copy + ".json") > _TAKEOUT_LIMIT:
                full = full[:_TAKEOUT_LIMIT - len(copy + ".json")]
            names.append(full + copy + ".json")
    names.append(os.path.splitext(bases[0])[0] + copy + ".json")  # IMG_1.json, as older exports wrote
    return [os.path.join(folder, n) for n in dict.fromkeys(names)]


def takeout(path: str) -> Caption | None:
    """The `description` (else a `title` that is more than a file name) of the photo's Takeout JSON sidecar."""
    for candidate in takeout_paths(path):
        data = _read_small(candidate)
        if data is None:
            continue
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError, RecursionError, MemoryError):  # deep nesting: RecursionError
            continue
        if not isinstance(doc, dict):
            continue
        for field in ("description", "title"):
            found = _caption(path, doc.get(field), TAKEOUT)
            if found:
                return found
    return None


# -- Caption files in a folder -----------------------------------------------------------------------

def _inside(folder: str, name) -> str | None:
    """The photo a caption file names, relative to its folder; None for names that leave the folder."""
    if not isinstance(name, str) or not name.strip():
        return None
    rel = os.path.normpath(name.strip().replace("\\", "/"))
    if os.path.isabs(rel) or rel == ".." or rel.startswith(".." + os.sep):
        return None
    return os.path.join(folder, rel)


def _first_text(row: dict, keys) -> str | None:
    """The first of `keys` whose value has words: a null or blank `text` falls through to `caption`."""
    return next((row[k] for k in keys if isinstance(row.get(k), str) and row[k].strip()), None)


def _rows_csv(path: str, file_key: str, text_keys: tuple[str, ...]):
    data = _read_small(path, MAX_CAPTION_FILE)
    if data is None:
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:  # Excel on Windows saves CSV in the ANSI code page
        if b"\x00" in data:
            return  # binary, or UTF-16: not a CSV we read
        text = data.decode("cp1252", "replace")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))  # so quoted line breaks stay in their field
        fields = {(f or "").strip().lower(): f for f in reader.fieldnames or ()}
        keys = [fields[k] for k in text_keys if k in fields]
        if file_key not in fields or not keys:
            return
        for row in reader:
            yield row.get(fields[file_key]), _first_text(row, keys)
    except csv.Error:
        return


def _rows_jsonl(path: str):
    data = _read_small(path, MAX_CAPTION_FILE)
    if data is None:
        return
    for line in data.decode("utf-8-sig", "replace").splitlines():
        try:
            row = json.loads(line)
        except (ValueError, RecursionError, MemoryError):  # deep nesting: RecursionError
            continue
        if isinstance(row, dict):
            yield row.get("file_name"), _first_text(row, ("text", "caption"))


_FOLDER_READERS = {
    CAPTIONS_CSV: lambda p: _rows_csv(p, "file", ("caption",)),
    METADATA_CSV: lambda p: _rows_csv(p, "file_name", ("text", "caption")),
    METADATA_JSONL: lambda p: _rows_jsonl(p),
}


def folder_file(folder: str, name: str) -> list[Caption]:
    """Captions from one caption file of the folder (`name` is CAPTIONS_CSV, METADATA_CSV or METADATA_JSONL)."""
    out = []
    for file, text in _FOLDER_READERS[name](os.path.join(folder, name)):
        photo = _inside(folder, file)
        found = _caption(photo, text, name) if photo else None
        if found:
            out.append(found)
    return out


def folder_files(folder: str) -> list[Caption]:
    """Captions from the folder's captions.csv (file,caption) and Hugging Face metadata.csv / metadata.jsonl
    (file_name with text or caption). Paths are joined to the folder; whether the photos exist is not checked."""
    return [c for name in (CAPTIONS_CSV, METADATA_CSV, METADATA_JSONL) for c in folder_file(folder, name)]


# -- Album folder names ------------------------------------------------------------------------------

_MONTHS = ("jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|january|february|march|april|june|july|"
           "august|september|october|november|december")
_LEADING = re.compile(r"^[\d\s_.,:;/#+~()\[\]-]+")
_DCF = re.compile(r"^\d{3}[A-Z0-9_]{5}$", re.I)  # 100CANON, 101MSDCF, 100_PANA
_GENERIC = frozenset((
    "dcim", "camera", "camera roll", "camera uploads", "photos", "pictures", "images", "img", "pics", "my photos",
    "my pictures", "screenshots", "screen shots", "downloads", "download", "desktop", "documents", "new folder",
    "untitled", "untitled folder", "unsorted", "misc", "other", "export", "exports", "import", "imports",
    "originals", "edited", "raw", "jpeg", "jpg", "backup", "iphone", "android", "phone", "whatsapp images",
    "whatsapp", "telegram", "instagram", "facebook", "takeout", "google photos", "icloud photos", "archive",
    "all photos", "recents", "favorites", "favourites", "temp", "tmp", "new", "old", "copy", "sent",
))
_GENERIC_PATTERN = re.compile(rf"^(photos|pictures|images) (from|of)\b[\d\s_./-]*$|^(?:{_MONTHS})\b[\d\s_.,/-]*$", re.I)


def album_name(folder_name: str) -> str | None:
    """A weak caption from an album folder's name: "2019-07 Mia's lake house" gives "Mia's lake house".
    None for names that are only dates or numbers, or generic ("DCIM", "100CANON", "Camera Roll")."""
    name = (folder_name or "").strip()
    if not name or name.startswith(".") or _DCF.match(name):
        return None
    if " " not in name and "_" in name:
        name = name.replace("_", " ")
    name = _LEADING.sub("", name)
    name = re.sub(r"[\s_.,:;/#+~-]+$", "", name)
    name = " ".join(name.split())
    if not any(c.isalpha() for c in name):
        return None
    if name.casefold() in _GENERIC or _GENERIC_PATTERN.match(name) or is_file_name(name):
        return None
    return name
