"""The command-line front: `glimpse folders|index|search|watch|status|errors|models|captions|tune|doctor`.

Library code raises errors with messages fit for a user; this module turns them into one line
on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys

from app import __version__

from . import captions, doctor, library, models, tune


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line, exit 2
        self.exit(2, f"glimpse: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="glimpse", description="Find photos on your disk by describing them.")
    p.add_argument("--version", action="version", version=f"glimpse {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    library.add_parsers(sub)
    models.add_parser(sub)
    captions.add_parser(sub)
    tune.add_parser(sub)
    doctor.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if not argv or argv == ["--help"] else 2
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 is printed as its own bytes
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")

    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        gc.freeze()  # the process ends next: spare its last collection of all it loaded (~0.08 s)
        return code
    except BrokenPipeError:  # `glimpse search … | head -1`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit is quiet
        return 1
    except _user_errors() as e:  # evaluated only when something was raised: app.tasks is not imported else
        print(no_space_message(e, args.command) or f"glimpse: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("glimpse: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        message = no_space_message(e, args.command)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 1


def _user_errors() -> tuple[type[BaseException], ...]:
    from app.tasks.errors import USER_ERRORS

    return USER_ERRORS


def no_space_message(error: BaseException, command: str | None = None) -> str | None:
    """The one line for a full disk (see `app.tasks.errors`), with what to run again."""
    from app.tasks.errors import no_space

    from app.library.paths import Paths

    again = "run `glimpse index` again" if command in ("index", "watch") else "try again"
    where = {"models": f"{Paths.default().models} (the models)", "search": "the device the output goes to",
             "status": "the device the output goes to", "errors": "the device the output goes to",
             "doctor": "the device the output goes to"}.get(command or "")
    text = no_space(error, again, where)
    return f"glimpse: {text}" if text else None
