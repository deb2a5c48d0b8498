"""Caption readers, on real files: metadata written by exiv2 (pyexiv2), real sidecars and caption files."""
from __future__ import annotations

import json
import os

import pytest
import pyexiv2  # a dev dependency: exiv2 writes the metadata, as photo tools do

from app.library import captions
from app.library.captions import Caption
from images import photo


def jpeg(path, seed=0, **save) -> str:
    photo(48, 32, seed).save(path, "JPEG", **save)
    return str(path)


def tag(path, xmp=None, iptc=None, exif=None) -> str:
    """Writes the metadata with exiv2, as digiKam, darktable and exiftool users' files carry it."""
    with pyexiv2.Image(str(path)) as img:
        if xmp is not None:
            img.modify_xmp({"Xmp.dc.description": xmp if isinstance(xmp, dict) else {'lang="x-default"': xmp}})
        if iptc is not None:
            img.modify_iptc({"Iptc.Application2.Caption": iptc})
        if exif is not None:
            img.modify_exif({"Exif.Image.ImageDescription": exif})
    return str(path)


def xmp_packet(tmp_path, text) -> str:
    """An XMP packet as exiv2 writes it, for a sidecar."""
    src = tag(jpeg(tmp_path / "packet-source.jpg"), xmp=text)
    with pyexiv2.Image(src) as img:
        return img.read_raw_xmp()


# -- Embedded ----------------------------------------------------------------------------------------

def test_embedded_prefers_xmp_then_iptc_then_exif(tmp_path):
    all_three = tag(jpeg(tmp_path / "a.jpg"), xmp="Mia's lake house", iptc="iptc words", exif="exif words")
    two = tag(jpeg(tmp_path / "b.jpg", 1), iptc="the Baxter cabin", exif="exif words")
    one = tag(jpeg(tmp_path / "c.jpg", 2), exif="our Tuesday hike")
    assert captions.embedded(all_three) == Caption(all_three, "Mia's lake house", "xmp")
    assert captions.embedded(two) == Caption(two, "the Baxter cabin", "iptc")
    assert captions.embedded(one) == Caption(one, "our Tuesday hike", "exif")
    assert captions.embedded(jpeg(tmp_path / "none.jpg", 3)) is None


def test_embedded_reads_non_ascii_text_in_each_block(tmp_path):
    for i, kind in enumerate(("xmp", "iptc", "exif")):
        path = tag(jpeg(tmp_path / f"{kind}.jpg", i), **{kind: "Oma's Küche, Köln"})
        assert captions.embedded(path) == Caption(path, "Oma's Küche, Köln", kind)


def test_embedded_xmp_takes_the_default_language(tmp_path):
    path = tag(jpeg(tmp_path / "a.jpg"), xmp={'lang="de-DE"': "Omas Küche", 'lang="x-default"': "Oma's kitchen"})
    assert captions.embedded(path).text == "Oma's kitchen"


def test_embedded_ignores_camera_boilerplate(tmp_path):
    olympus = tag(jpeg(tmp_path / "o.jpg"), exif="OLYMPUS DIGITAL CAMERA         ")
    sony = tag(jpeg(tmp_path / "s.jpg", 1), iptc="SONY DSC", exif="SONY DSC")
    blank = tag(jpeg(tmp_path / "b.jpg", 2), xmp="   ", exif="  ")
    behind = tag(jpeg(tmp_path / "k.jpg", 3), iptc="grandpa's boat", exif="KODAK Digital Still Camera")
    assert captions.embedded(olympus) is None
    assert captions.embedded(sony) is None
    assert captions.embedded(blank) is None
    assert captions.embedded(behind) == Caption(behind, "grandpa's boat", "iptc")


@pytest.mark.parametrize("text", ["OLYMPUS DIGITAL CAMERA", "SONY DSC", "DCIM", "SAMSUNG", "", "  \t ",
                                  "NIKON COOLPIX P900", "CANON POWERSHOT", "IMG_1234.JPG", "DSC01234",
                                  "PXL_20190707_123456789", "Created with GIMP"])
def test_boilerplate_is_recognised(text):
    assert captions.is_boilerplate(text)


@pytest.mark.parametrize("text", ["Mia's lake house", "OMA'S KITCHEN", "the Baxter cabin", "Sony at the beach"])
def test_real_captions_are_not_boilerplate(text):
    assert not captions.is_boilerplate(text)


def test_embedded_never_writes_the_original(tmp_path):
    path = tag(jpeg(tmp_path / "a.jpg"), xmp="Mia's lake house")
    before = (open(path, "rb").read(), os.stat(path).st_mtime_ns)
    assert captions.embedded(path).text == "Mia's lake house"
    assert (open(path, "rb").read(), os.stat(path).st_mtime_ns) == before


def test_embedded_survives_broken_files(tmp_path):
    not_image = tmp_path / "text.jpg"
    not_image.write_text("not a photo")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(open(tag(jpeg(tmp_path / "whole.jpg"), exif="cut short"), "rb").read()[:200])
    # Pillow writes the packet as given: a broken XMP block falls through to the EXIF caption.
    exif = photo(48, 32).getexif()
    exif[270] = "still found"
    bad_xmp = tmp_path / "bad-xmp.jpg"
    photo(48, 32).save(bad_xmp, "JPEG", exif=exif, xmp=b"<x:xmpmeta><rdf:RDF><dc:description>oops")
    assert captions.embedded(str(not_image)) is None
    assert captions.embedded(str(tmp_path / "missing.jpg")) is None
    assert captions.embedded(str(truncated)) in (None, Caption(str(truncated), "cut short", "exif"))
    assert captions.embedded(str(bad_xmp)) == Caption(str(bad_xmp), "still found", "exif")


def test_embedded_reads_png_xmp(tmp_path):
    path = str(tmp_path / "a.png")
    photo(48, 32).save(path, "PNG")
    tag(path, xmp="the Baxter cabin")
    assert captions.embedded(path) == Caption(path, "the Baxter cabin", "xmp")


# -- XMP sidecars ------------------------------------------------------------------------------------

def test_sidecar_reads_both_naming_styles(tmp_path):
    darktable = jpeg(tmp_path / "IMG_1.jpg")
    (tmp_path / "IMG_1.jpg.xmp").write_text(xmp_packet(tmp_path, "Mia's lake house"), encoding="utf-8")
    lightroom = jpeg(tmp_path / "IMG_2.jpg", 1)
    (tmp_path / "IMG_2.xmp").write_text(xmp_packet(tmp_path, "Oma's Küche"), encoding="utf-8")
    assert captions.sidecar(darktable) == Caption(darktable, "Mia's lake house", "xmp-sidecar")
    assert captions.sidecar(lightroom) == Caption(lightroom, "Oma's Küche", "xmp-sidecar")
    assert captions.sidecar(jpeg(tmp_path / "IMG_3.jpg", 2)) is None


def test_sidecar_prefers_the_full_name_and_skips_broken_ones(tmp_path):
    path = jpeg(tmp_path / "IMG_1.jpg")
    (tmp_path / "IMG_1.jpg.xmp").write_text("<x:xmpmeta><rdf:RDF>not closed", encoding="utf-8")
    (tmp_path / "IMG_1.xmp").write_text(xmp_packet(tmp_path, "the Baxter cabin"), encoding="utf-8")
    assert captions.sidecar(path) == Caption(path, "the Baxter cabin", "xmp-sidecar")
    (tmp_path / "IMG_1.xmp").write_bytes(b"\xff\xfe garbage")
    assert captions.sidecar(path) is None
    (tmp_path / "IMG_1.xmp").write_text(xmp_packet(tmp_path, "SONY DSC"), encoding="utf-8")
    assert captions.sidecar(path) is None


def test_sidecar_takes_the_default_language_wherever_it_is(tmp_path):
    path = jpeg(tmp_path / "IMG_1.jpg")
    packet = xmp_packet(tmp_path, {'lang="de-DE"': "Omas Küche", 'lang="x-default"': "Oma's kitchen"})
    default = '<rdf:li xml:lang="x-default">Oma\'s kitchen</rdf:li>'
    german = '<rdf:li xml:lang="de-DE">Omas Küche</rdf:li>'
    assert default in packet and german in packet  # exiv2 writes x-default first; other writers may not
    swapped = packet.replace(default, "@").replace(german, default).replace("@", german)
    (tmp_path / "IMG_1.jpg.xmp").write_text(swapped, encoding="utf-8")
    assert swapped.index(german) < swapped.index(default)
    assert captions.sidecar(path) == Caption(path, "Oma's kitchen", "xmp-sidecar")


def test_sidecar_refuses_entities(tmp_path):
    path = jpeg(tmp_path / "IMG_1.jpg")
    packet = xmp_packet(tmp_path, "&e;")
    (tmp_path / "IMG_1.jpg.xmp").write_text('<!DOCTYPE x [<!ENTITY e "boom">]>' + packet.replace("&amp;e;", "&e;"))
    assert captions.sidecar(path) is None


# -- Google Takeout ----------------------------------------------------------------------------------

def takeout_json(path, **fields):
    doc = {"title": "IMG_1.jpg", "description": "", "photoTakenTime": {"timestamp": "1562500000"}}
    doc.update(fields)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f)


def test_takeout_reads_the_description(tmp_path):
    old = jpeg(tmp_path / "IMG_1.jpg")
    takeout_json(tmp_path / "IMG_1.jpg.json", description="our Tuesday hike")
    new = jpeg(tmp_path / "IMG_2.jpg", 1)
    takeout_json(tmp_path / "IMG_2.jpg.supplemental-metadata.json", title="IMG_2.jpg", description="Oma's kitchen")
    assert captions.takeout(old) == Caption(old, "our Tuesday hike", "takeout")
    assert captions.takeout(new) == Caption(new, "Oma's kitchen", "takeout")
    assert captions.takeout(jpeg(tmp_path / "IMG_3.jpg", 2)) is None


def test_takeout_finds_truncated_and_copy_names(tmp_path):
    long_name = "a_very_long_file_name_from_a_scanner_2019_07.jpg"  # 48 characters
    long_photo = jpeg(tmp_path / long_name)
    truncated = (long_name + ".supplemental-metadata")[:46] + ".json"
    takeout_json(tmp_path / truncated, title=long_name, description="Mia's lake house")
    copy = jpeg(tmp_path / "IMG_5(1).jpg", 1)
    takeout_json(tmp_path / "IMG_5.jpg(1).json", title="IMG_5.jpg", description="the Baxter cabin")
    assert len(truncated) == 51
    assert captions.takeout(long_photo) == Caption(long_photo, "Mia's lake house", "takeout")
    assert captions.takeout(copy) == Caption(copy, "the Baxter cabin", "takeout")


def test_takeout_ignores_file_name_titles_and_broken_json(tmp_path):
    named = jpeg(tmp_path / "IMG_1.jpg")
    takeout_json(tmp_path / "IMG_1.jpg.json", title="IMG_1.jpg", description="")
    titled = jpeg(tmp_path / "IMG_2.jpg", 1)
    takeout_json(tmp_path / "IMG_2.jpg.json", title="Mia's lake house", description="")
    broken = jpeg(tmp_path / "IMG_3.jpg", 2)
    (tmp_path / "IMG_3.jpg.json").write_text('{"description": "cut', encoding="utf-8")
    listed = jpeg(tmp_path / "IMG_4.jpg", 3)
    (tmp_path / "IMG_4.jpg.json").write_text('["our Tuesday hike"]', encoding="utf-8")
    assert captions.takeout(named) is None
    assert captions.takeout(titled) == Caption(titled, "Mia's lake house", "takeout")
    assert captions.takeout(broken) is None
    assert captions.takeout(listed) is None


# -- Caption files -----------------------------------------------------------------------------------

def test_folder_files_reads_captions_csv_and_hugging_face_metadata(tmp_path):
    (tmp_path / "captions.csv").write_text('\ufefffile,caption\nIMG_1.jpg,"Mia\'s lake house, at dusk"\n'
                                           "sub/IMG_2.jpg,the Baxter cabin\nIMG_3.jpg,SONY DSC\n",
                                           encoding="utf-8")
    (tmp_path / "metadata.csv").write_text("file_name,text\ntrain/0001.png,Oma's kitchen\n", encoding="utf-8")
    (tmp_path / "metadata.jsonl").write_text(
        '{"file_name": "train/0002.png", "caption": "our Tuesday hike"}\n{broken\n[1, 2]\n'
        '{"file_name": "train/0003.png", "text": "the old barn"}\n', encoding="utf-8")
    folder = str(tmp_path)
    assert captions.folder_files(folder) == [
        Caption(os.path.join(folder, "IMG_1.jpg"), "Mia's lake house, at dusk", "captions.csv"),
        Caption(os.path.join(folder, "sub", "IMG_2.jpg"), "the Baxter cabin", "captions.csv"),
        Caption(os.path.join(folder, "train", "0001.png"), "Oma's kitchen", "metadata.csv"),
        Caption(os.path.join(folder, "train", "0002.png"), "our Tuesday hike", "metadata.jsonl"),
        Caption(os.path.join(folder, "train", "0003.png"), "the old barn", "metadata.jsonl"),
    ]


def test_folder_files_skips_broken_files_and_paths_outside(tmp_path):
    (tmp_path / "captions.csv").write_text("name,comment\nIMG_1.jpg,Mia's lake house\n", encoding="utf-8")
    (tmp_path / "metadata.csv").write_bytes(b"file_name,text\n\xff\xfe,\x00bad\n")
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "../outside.jpg", "text": "escaped"}\n'
                                             '{"file_name": "/etc/a.jpg", "text": "absolute"}\n'
                                             '{"file_name": "short.jpg"}\n', encoding="utf-8")
    assert captions.folder_files(str(tmp_path)) == []
    assert captions.folder_files(str(tmp_path / "missing")) == []
    (tmp_path / "captions.csv").write_text("file,caption\nIMG_1.jpg\nIMG_2.jpg,the Baxter cabin,extra\n",
                                           encoding="utf-8")
    assert [c.text for c in captions.folder_files(str(tmp_path))] == ["the Baxter cabin"]


# -- Album names -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, caption", [
    ("2019-07 Mia's lake house", "Mia's lake house"),
    ("2019_07_14_Baxter_cabin", "Baxter cabin"),
    ("20190714 - Oma's kitchen", "Oma's kitchen"),
    ("03. Tuesday hike", "Tuesday hike"),
    ("Summer in Rome", "Summer in Rome"),
    ("2019-07-14", None), ("2019", None), ("July 2019", None), ("DCIM", None), ("100CANON", None),
    ("101MSDCF", None), ("Camera Roll", None), ("Photos", None), ("Photos from 2019", None), ("", None),
    ("Untitled", None), ("  ", None),
])
def test_album_name(name, caption):
    assert captions.album_name(name) == caption


# -- Hostile and awkward files -----------------------------------------------------------------------

DEEP = "[" * 200000 + "]" * 200000  # json.loads raises RecursionError on it


def test_readers_survive_deeply_nested_json(tmp_path):
    path = jpeg(tmp_path / "d.jpg")
    (tmp_path / "d.jpg.json").write_text(DEEP)
    (tmp_path / "d.json").write_text(json.dumps({"description": "the old barn"}))  # the next name still counts
    (tmp_path / "metadata.jsonl").write_text(DEEP + "\n" + json.dumps({"file_name": "a.jpg", "text": "the pier"})
                                             + "\n", encoding="utf-8")
    assert captions.takeout(path) == Caption(path, "the old barn", "takeout")
    assert captions.folder_files(str(tmp_path)) == [Caption(str(tmp_path / "a.jpg"), "the pier", "metadata.jsonl")]


def test_captions_csv_saved_by_excel_in_cp1252(tmp_path):
    (tmp_path / "captions.csv").write_bytes("file,caption\r\nIMG_1.jpg,Oma’s Küche in Köln – 1995\r\n"
                                            .encode("cp1252"))
    assert captions.folder_files(str(tmp_path)) == [
        Caption(str(tmp_path / "IMG_1.jpg"), "Oma’s Küche in Köln – 1995", "captions.csv")]


def test_caption_files_bigger_than_a_sidecar_are_read(tmp_path):
    words = "a long walk along the old harbour wall " * 25  # about 1 KiB a row
    rows = 9 * 1024
    with open(tmp_path / "captions.csv", "w", encoding="utf-8") as f:
        f.write("file,caption\n")
        f.writelines(f"IMG_{i}.jpg,{words}{i}\n" for i in range(rows))
    with open(tmp_path / "metadata.jsonl", "w", encoding="utf-8") as f:
        f.write(json.dumps({"file_name": "big.jpg", "text": "the pier", "pad": "x" * (9 << 20)}) + "\n")
    assert os.path.getsize(tmp_path / "captions.csv") > captions.MAX_SIDECAR
    found = captions.folder_files(str(tmp_path))
    assert len(found) == rows + 1
    assert found[-2].text.endswith(f"wall {rows - 1}") and found[-1].text == "the pier"


def test_multi_line_quoted_csv_caption_keeps_the_break_as_a_space(tmp_path):
    (tmp_path / "captions.csv").write_text('file,caption\nIMG_1.jpg,"line one\nline two"\nIMG_2.jpg,the pier\n',
                                           encoding="utf-8")
    assert [c.text for c in captions.folder_files(str(tmp_path))] == ["line one line two", "the pier"]


@pytest.mark.parametrize("text", ["MOUNT FUJI AT SUNRISE", "APPLE PICKING WITH OMA", "SUNSET OVER THE NIKON FACTORY"])
def test_all_caps_captions_naming_a_maker_are_real(text):
    assert not captions.is_boilerplate(text)


@pytest.mark.parametrize("text", ["CANON EOS 5D", "NIKON D750", "SONY DSC-RX100M3", "CANON EOS 5D MARK III",
                                  "SAMSUNG GALAXY S10", "FUJIFILM X100V", "GOPRO HERO7 BLACK"])
def test_maker_and_model_strings_are_boilerplate(text):
    assert captions.is_boilerplate(text)


def test_jsonl_null_text_falls_through_to_caption(tmp_path):
    (tmp_path / "metadata.jsonl").write_text(
        json.dumps({"file_name": "a.jpg", "text": None, "caption": "the pier"}) + "\n"
        + json.dumps({"file_name": "b.jpg", "text": "  ", "caption": "the barn"}) + "\n", encoding="utf-8")
    (tmp_path / "metadata.csv").write_text("file_name,text,caption\nc.jpg,,the dock\n", encoding="utf-8")
    assert {os.path.basename(c.path): c.text for c in captions.folder_files(str(tmp_path))} == {
        "a.jpg": "the pier", "b.jpg": "the barn", "c.jpg": "the dock"}
