"""The command-line front: `glimpse folders|index|search|watch|status|errors|models|doctor`.

Library code raises errors with messages fit for a user; this module turns them into one line
on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import sys

from app import __version__

from . import doctor, library, models


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line, exit 2
        self.exit(2, f"glimpse: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="glimpse", description="Find photos on your disk by describing them.")
    p.add_argument("--version", action="version", version=f"glimpse {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    library.add_parsers(sub)
    models.add_parser(sub)
    doctor.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if not argv or argv == ["--help"] else 2
    from app.library.catalog import CatalogError
    from app.library.folders import FolderError
    from app.library.query import QueryError
    from model.errors import ImageError, ModelError

    try:
        return int(args.func(args) or 0)
    except (ModelError, ImageError, CatalogError, FolderError, QueryError) as e:
        print(f"glimpse: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("glimpse: interrupted", file=sys.stderr)
        return 130
