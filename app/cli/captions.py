"""`glimpse captions [--json]`, `captions set PATH TEXT`, `captions clear PATH`, `captions export FILE.csv`,
`captions albums on|off`.

Captions are what fine-tuning learns from; the catalog gathers them at every `glimpse index` (see
`app.library.caption_index`). Typed ones are kept by the photo's content, so they follow it when moved.
"""
from __future__ import annotations

import os
import sys

from .context import Context
from .library import _json, _say_waiting

HINT = """No captions found yet. Glimpse reads them, at each `glimpse index`, from:
  - descriptions in the photos: XMP dc:description, IPTC Caption-Abstract, EXIF ImageDescription
  - XMP sidecars (IMG_1.jpg.xmp or IMG_1.xmp: darktable, digiKam, Lightroom)
  - Google Takeout sidecars (IMG_1.jpg.json, field "description")
  - captions.csv (columns file,caption) and metadata.csv / metadata.jsonl (file_name, text) in a folder
  - album folder names ("2019-07 Mia's lake house"), once `glimpse captions albums on`
Type one with `glimpse captions set PATH TEXT`."""


def add_parser(sub) -> None:
    c = sub.add_parser("captions", help="the captions Glimpse found (what fine-tuning learns from); set, "
                                        "clear or export them")
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    c.set_defaults(func=cmd_summary)
    csub = c.add_subparsers(dest="action", metavar="ACTION")
    s = csub.add_parser("set", help="type a caption for an indexed photo (kept in the catalog; the file is "
                                    "not touched)")
    s.add_argument("path", metavar="PATH")
    s.add_argument("text", nargs="+", metavar="TEXT")
    s.set_defaults(func=cmd_set)
    cl = csub.add_parser("clear", help="forget the caption typed for a photo")
    cl.add_argument("path", metavar="PATH")
    cl.set_defaults(func=cmd_clear)
    e = csub.add_parser("export", help="write every photo's caption to a CSV file (file,caption,source)")
    e.add_argument("file", metavar="FILE.csv", help="the file to write (replaced whole); - writes to stdout")
    e.set_defaults(func=cmd_export)
    a = csub.add_parser("albums", help="use album folder names as weak captions (off by default)")
    a.add_argument("state", choices=("on", "off"))
    a.set_defaults(func=cmd_albums)


def _photo_path(path: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


def cmd_summary(args) -> int:
    library = Context().library
    summary = library.caption_summary()
    if args.json:
        print(_json(summary))
        return 0
    if not summary["photos"]:
        if library.catalog.count("status = 'ok'") == 0:
            print("No photos indexed yet: `glimpse folders add PATH` then `glimpse index`.")
        print(HINT)
        return 0
    print(f"{summary['photos']} photos have a caption ({summary['distinct']} distinct).")
    print("by source:")
    for source, n in summary["by_source"].items():
        print(f"{n:>8}  {source}")
    print("by folder:")
    folders = list(summary["by_folder"].items())
    for folder, n in folders[:20]:
        print(f"{n:>8}  {folder}")
    if len(folders) > 20:
        print(f"{'':>8}  … and {len(folders) - 20} more folders (--json lists them all)")
    print("examples:")
    for ex in summary["examples"]:
        print(f"  [{ex['source']}] {ex['text']}  — {ex['path']}")
    return 0


def cmd_set(args) -> int:
    library = Context().library
    text = " ".join(args.text).strip()
    caption = library.set_caption(_photo_path(args.path), text, on_wait=_say_waiting)
    if text:
        print(f"Caption set: {caption.path}: {caption.text}")
    else:
        _say_cleared(caption, args.path)
    return 0


def cmd_clear(args) -> int:
    library = Context().library
    _say_cleared(library.clear_caption(_photo_path(args.path), on_wait=_say_waiting), args.path)
    return 0


def _say_cleared(caption, path: str) -> None:
    print(f"Caption cleared: {_photo_path(path)}"
          + (f" (it keeps its caption from {caption.source}: {caption.text})" if caption else ""))


def cmd_export(args) -> int:
    library = Context().library
    if args.file == "-":  # the CSV alone on stdout, so it can be piped; the count goes to stderr
        n = library.export_captions(sys.stdout)
        sys.stdout.flush()
        print(f"Wrote {n} captions", file=sys.stderr)
    else:
        n = library.export_captions(args.file)
        print(f"Wrote {n} captions to {args.file}")
    return 0


def cmd_albums(args) -> int:
    ctx = Context()
    ctx.settings["album_captions"] = args.state == "on"
    print("Album folder names are used as captions." if args.state == "on"
          else "Album folder names are not used as captions.")
    return 0
