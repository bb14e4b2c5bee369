"""What the command-line programs share."""

from __future__ import annotations

import argparse
from typing import NoReturn

USAGE_ERROR = 2  # exit status for bad flags and invalid input, as argparse uses


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line, ``PROG: error: <flag>: <reason>``, exit 2
    (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")
