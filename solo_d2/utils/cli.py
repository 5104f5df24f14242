"""What every solo_d2 command line shares: help that shows the tool's description and every
default, and input files checked up front so that a missing one is one line, not a traceback."""
import argparse
import os

__all__ = ["HelpFormatter", "readable_file", "tool_parser"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and appends "(default: ...)" to every option."""


def readable_file(path: str) -> str:
    """argparse ``type=`` for an input file: the path when it is a readable file, else an
    argparse error (one "error:" line, exit status 2) naming it."""
    if not os.path.exists(path):
        raise argparse.ArgumentTypeError(f"{path!r} does not exist")
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"{path!r} is not a file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{path!r} is not readable")
    return path


def tool_parser(description: str, **kwargs) -> argparse.ArgumentParser:
    """An ArgumentParser with ``description`` (a tool's module docstring) and defaults shown."""
    return argparse.ArgumentParser(description=description, formatter_class=HelpFormatter, **kwargs)
