"""`glimpse folders add|remove|list`, `index`, `search`, `watch`, `status`, `errors`."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

from app.library.units import human_size

from .context import Context


def add_parsers(sub) -> None:
    f = sub.add_parser("folders", help="the folders Glimpse watches and indexes")
    fsub = f.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = fsub.add_parser("add", help="watch a folder (index it with `glimpse index`)")
    add.add_argument("paths", nargs="+", metavar="PATH")
    add.set_defaults(func=cmd_folders_add)
    rm = fsub.add_parser("remove", help="stop watching a folder and forget its photos (files are not touched)")
    rm.add_argument("paths", nargs="+", metavar="PATH")
    rm.set_defaults(func=cmd_folders_remove)
    fsub.add_parser("list", help="watched folders with their photo counts").set_defaults(func=cmd_folders_list)
    ex = fsub.add_parser("exclude", help="set the glob patterns to skip, replacing the list (e.g. '*/Trash/*' "
                                         "'tmp*'); none clears it")
    ex.add_argument("patterns", nargs="*", metavar="PATTERN")
    ex.set_defaults(func=cmd_folders_exclude)

    idx = sub.add_parser("index", help="bring the index up to date with the watched folders")
    idx.add_argument("--batch-size", type=_positive_int, default=32, help="images per model call (default 32)")
    idx.set_defaults(func=cmd_index)

    s = sub.add_parser("search", help="find photos by text, by an image, or both",
                       description="Terms combine as in rclip: 'cat + snow - indoor', weights as '2:cat'; "
                                   "a path to an image file searches by that image.")
    s.add_argument("query", nargs="?", default="", help="text, an image file, or a combination")
    s.add_argument("--add", action="append", default=[], metavar="TERM", help="add a text or image term")
    s.add_argument("--sub", action="append", default=[], metavar="TERM", help="subtract a text or image term")
    s.add_argument("--similar", action="append", default=[], metavar="PATH",
                   help="photos similar to an indexed photo (uses its stored vector)")
    s.add_argument("-k", "--top", type=int, default=20, metavar="K",
                   help="how many results, best first, however weak the match (default 20)")
    s.add_argument("--offset", type=int, default=0, help="skip this many results (paging)")
    s.add_argument("--folder", help="only photos in this folder")
    s.add_argument("--after", metavar="YYYY-MM-DD", help="only photos taken on or after this day")
    s.add_argument("--before", metavar="YYYY-MM-DD", help="only photos taken on or before this day")
    s.add_argument("--json", action="store_true",
                   help="print results as JSON; a file name that is not UTF-8 shows U+FFFD in 'path' and "
                        "adds 'path_bytes', its exact bytes in base64")
    s.set_defaults(func=cmd_search)

    w = sub.add_parser("watch", help="index, then keep the index current as files change (Ctrl+C stops)")
    w.add_argument("--quiet-seconds", type=_seconds, default=1.0, help="wait for this long without changes")
    w.set_defaults(func=cmd_watch)
    sub.add_parser("status", help="photo counts, errors, the active model and the database size") \
        .set_defaults(func=cmd_status)
    e = sub.add_parser("errors", help="files that could not be indexed, with the reason")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_errors)


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (argparse prints the refusal as one line)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of at least 1")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds (0 or more)")
    return value


def cmd_folders_add(args) -> int:
    ctx = Context()
    for path in args.paths:
        folder = ctx.library.folders.add(path)
        print(f"Watching {folder}")
    print("Run `glimpse index` to index it, or `glimpse watch` to index and keep watching.")
    return 0


def _say_waiting(message: str) -> None:
    """What a command prints while another Glimpse holds the catalog's writer lock."""
    print(f"glimpse: {message} (Ctrl+C stops)", file=sys.stderr, flush=True)


def cmd_folders_remove(args) -> int:
    ctx = Context()
    for path in args.paths:
        folder = ctx.library.remove_folder(path, on_wait=_say_waiting)
        print(f"Removed {folder} (its photos are forgotten by Glimpse; no file was touched)")
    return 0


def cmd_folders_list(args) -> int:
    ctx = Context()
    roots = ctx.library.folders.list()
    if not roots:
        print("No folders yet. Add one with `glimpse folders add PATH`.")
        return 0
    status = ctx.library.status().folders
    for root in roots:
        s = status[root]
        problem = f"  ({s.problem})" if s.problem else ""
        print(f"{s.photos:>8} photos {s.errors:>5} errors  {root}{problem}")
    patterns = ctx.library.folders.exclusions.patterns
    if patterns:
        print("excluded: " + " ".join(patterns))
    return 0


def cmd_folders_exclude(args) -> int:
    from app.library.folders import FolderError

    if any(not p.strip() for p in args.patterns):
        raise FolderError("an empty pattern excludes nothing; give patterns like '*/Trash/*' or 'tmp*'")
    ctx = Context()
    before = ctx.library.folders.exclusions.patterns
    ctx.library.folders.set_exclusions(args.patterns)
    print("Excluded: " + (" ".join(args.patterns) if args.patterns else "nothing besides hidden and system folders")
          + (f" (replacing: {' '.join(before)})" if before and list(before) != list(args.patterns) else ""))
    return 0


class Bar:
    """A tqdm bar fed by the indexer's progress events (on stderr, only on a terminal), with the rate and
    time left the indexer measures over its last seconds, and the device: "12.5 images/s, 3:20 left,
    CPU, 2 threads" (tqdm's own rate would average from the start, model loading included)."""

    def __init__(self, desc: str | None = None):
        self.desc = desc  # None: the stage the progress names
        self.stage = None
        self.bar = None
        self.device = ""  # the last device a stage reported ("CPU, 2 threads")

    def __call__(self, p) -> None:
        from tqdm import tqdm

        if self.bar is not None and p.stage != self.stage and self.desc is None:
            self.close()  # a new stage ("Preparing MODEL") gets a bar of its own
        self.stage, self.device = p.stage, p.device or self.device
        if self.bar is None:
            self.bar = tqdm(total=p.total, desc=self.desc or p.stage, unit="photo", disable=None,
                            dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        self.bar.total = p.total
        self.bar.n = p.done
        self.bar.set_postfix_str(", ".join(_rate_parts(p)), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _rate_parts(p) -> list[str]:
    """"12.5 images/s", "3:20 left", the device and errors, as far as known."""
    from tqdm import tqdm

    parts = [f"{p.rate:.1f} images/s"] if p.rate > 0 else []
    if p.eta_s is not None and p.rate > 0:
        parts.append(f"{tqdm.format_interval(p.eta_s)} left")
    if p.device:
        parts.append(p.device)
    if p.errors:
        parts.append(f"{p.errors} errors")
    return parts


def _report(update, device: str = "") -> None:
    plan, s = update.plan, update.summary
    for problem in plan.problems:
        print(f"glimpse: {problem}", file=sys.stderr)
    rate = f", {s.encoded / s.seconds:.1f} images/s" if s.encoded and s.seconds else ""
    rate += f" on {device}" if rate and device else ""
    print(f"{s.done - s.errors} indexed ({s.encoded} encoded, {s.reused} reused{rate}), {len(plan.deleted)} removed, "
          f"{plan.unchanged} unchanged, {s.errors} could not be read"
          + (" — see `glimpse errors`" if s.errors else "") + (" (cancelled)" if s.cancelled else ""))
    if update.repaired:
        print(f"Repaired {update.repaired} duplicate rows an earlier version had left.")
    if update.switched_to:
        print(f"Now searching with {update.switched_to} (its vectors are complete).")


def _library_with_folders(verb: str):
    """The library, or a clear error when there is nothing to `verb` yet."""
    from app.library.folders import FolderError

    library = Context().library
    if not library.folders.list():
        raise FolderError(f"no folders to {verb}; add one with `glimpse folders add PATH`")
    return library


def cmd_index(args) -> int:
    library = _library_with_folders("index")
    from app import tasks
    from model.jobs import Job

    bar = Bar()
    try:
        update = tasks.index(library, Job(bar), batch_size=args.batch_size, on_wait=_say_waiting)
    finally:
        bar.close()
        library.close()
    _report(update, bar.device)
    return 0


def _json(value) -> str:
    """JSON as UTF-8 text; a file name that is not UTF-8 is written with \\u escapes (valid JSON that
    Python's json.loads turns back into the same name), not as raw bytes."""
    text = json.dumps(value, indent=1, ensure_ascii=False)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return json.dumps(value, indent=1)


def _path_fields(row: dict) -> dict:
    """`row` with a "path" strict JSON parsers accept: a name that is not UTF-8 (Python holds its bytes as
    lone surrogates) shows U+FFFD there, as other tools show it, and "path_bytes" (base64) carries the
    exact bytes, so a script can still open the file."""
    import base64
    import os

    raw = os.fsencode(row["path"])
    try:
        raw.decode("utf-8")
        return row
    except UnicodeDecodeError:
        return {**row, "path": raw.decode("utf-8", "replace"),
                "path_bytes": base64.b64encode(raw).decode("ascii")}


def _warn_if_incomplete(library) -> None:
    """Say so when some indexed photos have no vector for the active model yet (so are not searched)."""
    model = library.models.active_or_none()
    if model is not None and not library.space_complete(model.image_space):
        print(f"glimpse: some photos have no vector for '{model.id}' yet, so they are not searched: "
              "run `glimpse index`", file=sys.stderr)


def cmd_search(args) -> int:
    from app.library.session import SearchRequest, answer, day

    ctx = Context()
    request = SearchRequest(args.query, tuple(args.add), tuple(args.sub), tuple(args.similar), args.folder,
                            day(args.after), day(args.before), offset=args.offset, k=args.top, fresh=True)
    results = answer(ctx.library, request).results
    _warn_if_incomplete(ctx.library)
    if args.json:
        print(_json([_path_fields(r.to_dict()) for r in results]))
        return 0
    if not results:
        empty = ctx.library.catalog.count("status = 'ok'") == 0
        print("No photos indexed yet: `glimpse folders add PATH` then `glimpse index`." if empty
              else "No results (check the filters).")
        return 0
    for r in results:
        print(f"{r.score:.3f}  {r.taken:%Y-%m-%d}  {human_size(r.size):>8}  {r.path}")
    return 0


def cmd_watch(args) -> int:
    from app.library.watcher import Watcher

    library = _library_with_folders("watch")
    library.encoder()  # a missing model is reported now, not in the background
    bar = Bar()

    def on_update(update) -> None:
        bar.close()
        _report(update)
        sys.stdout.flush()

    def run_update(progress, control, only=None):
        return library.update(progress, control, only=only, on_wait=_say_waiting)

    watcher = Watcher(library, on_update=on_update, on_progress=bar, quiet=args.quiet_seconds,
                      run_update=run_update).start()
    print(f"Watching {len(library.folders.list())} folder(s); Ctrl+C stops.", flush=True)
    shown = None
    try:
        while True:
            time.sleep(0.5)
            if watcher.error != shown:
                shown = watcher.error
                print(f"glimpse: {shown}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("Stopping…", file=sys.stderr)
    finally:
        watcher.stop()
        bar.close()
        library.close()
    return 0


def vectors_note(s, distinct: int) -> str:
    """How many vectors, said so that fewer vectors than photos does not read as photos missing."""
    if s.vectors < distinct:
        return f"{s.vectors} of {distinct} vectors made; `glimpse index` makes the rest"
    if distinct < s.photos:
        return f"{s.vectors} vectors for {s.photos} photos: identical files share one"
    return f"{s.vectors} vectors"


def cmd_status(args) -> int:
    ctx = Context()
    s = ctx.library.status()
    print(f"photos      {s.photos}  ({s.errors} could not be read)")
    print(f"model       {s.active_model or 'none (glimpse models pull)'}  ({vectors_note(s, ctx.library.distinct_contents())})")
    if s.next_model:
        print(f"next model  {s.next_model}  (its vectors are being made; `glimpse index` goes on)")
    print(f"database    {human_size(s.database_bytes)}  {s.database}")
    if not s.folders:
        print("folders     none (glimpse folders add PATH)")
    for root, f in s.folders.items():
        print(f"folder      {root}: {f.photos} photos, {f.errors} errors" + (f"  ({f.problem})" if f.problem else ""))
    return 0


def cmd_errors(args) -> int:
    ctx = Context()
    rows = ctx.library.errors()
    if args.json:
        print(_json([_path_fields({"path": r["path"], "error": r["error"]}) for r in rows]))
        return 0
    if not rows:
        print("No errors: every photo found could be read.")
    for r in rows:
        print(f"{r['path']}: {r['error']}")
    return 0
