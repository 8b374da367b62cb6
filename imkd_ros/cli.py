"""The ``imkd`` command line: one entry point, subcommands contributed by each room.

Each room that offers commands has a module with ``register(subparsers)`` that adds its parsers
and sets ``func`` (a callable taking the parsed args and returning an exit code). Rooms are
imported lazily, so ``imkd --help`` stays fast and a broken room does not hide the others.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
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
    try:
        return int(args.func(args) or 0)
    except Exception as exc:  # a bad file or value given on the command line: one line, exit 2
        if os.environ.get("IMKD_DEBUG") or not _is_input_error(exc):
            raise
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, KeyError):
            text = f"not found: {text}"
        print(f"imkd {args.command}: error: {text}", file=sys.stderr)
        return 2


def _is_input_error(exc: BaseException) -> bool:
    if isinstance(exc, _input_errors()):
        return True
    if isinstance(exc, AssertionError):  # the nuScenes devkit asserts on a missing table / version
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        return tb is not None and "nuscenes" in tb.tb_frame.f_code.co_filename
    return False


def _input_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "this input is bad" (not a bug): missing/unreadable files, invalid values,
    corrupt checkpoints or recordings. IMKD_DEBUG=1 shows the traceback instead."""
    errors: list[type[BaseException]] = [OSError, ValueError, EOFError, KeyError]
    for mod, name in (("yaml", "YAMLError"), ("rosbags.highlevel", "AnyReaderError"),
                      ("rosbags.rosbag2", "ReaderError"), ("zipfile", "BadZipFile")):
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(getattr(importlib.import_module(mod), name))
    return tuple(errors)


if __name__ == "__main__":
    sys.exit(main())
