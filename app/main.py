"""The `glimpse` command: no arguments opens the window, a subcommand runs the CLI."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from app.cli import main as cli_main

    if not argv:
        # The window comes with the GUI issue; until then say so and show the commands.
        print("Glimpse's window is not part of this build yet. Use the command line:\n", file=sys.stderr)
        return cli_main(["--help"])
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
