"""The ``ccd`` command line: one entry point, a subcommand per user task.

Every bad input ends the same way: one line on stderr naming what is wrong and where,
and exit code 2 (argparse's own usage errors included), so scripts can rely on it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from acd.errors import InputError
from ccd import campaign_command, pbx_command, serve_command, simulate_command, staff_command

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line instead of usage + message."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ccd",
        description="ccd: automatic call distribution, predictive dialling and capacity planning.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    staff_command.add_parser(sub)
    simulate_command.add_parser(sub)
    serve_command.add_parser(sub)
    pbx_command.add_parser(sub)
    campaign_command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except InputError as exc:
        print(f"ccd {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        name = exc.filename if exc.filename is not None else ""
        print(f"ccd {args.command}: error: {name}: {exc.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
