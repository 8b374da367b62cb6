"""The ``imkd`` command line: one entry point, subcommands contributed by each room.

Each room that offers commands has a module with ``register(subparsers)`` that adds its parsers
and sets ``func`` (a callable taking the parsed args and returning an exit code). Rooms are
imported lazily, so ``imkd --help`` stays fast and a broken room does not hide the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (module, description) pairs; each module defines register(subparsers).
COMMAND_MODULES: tuple[str, ...] = (
    "imkd_ros.data.commands",  # imkd data synth | to-bag | render
    "imkd_ros.train.commands",  # imkd train
    "imkd_ros.evaluation.commands",  # imkd eval
    "imkd_ros.export.commands",  # imkd export
    "imkd_ros.replay.commands",  # imkd replay | play
    "imkd_ros.runtime.commands",  # imkd doctor
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imkd", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # room not there yet; anything else is a bug
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
