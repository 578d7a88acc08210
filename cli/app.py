"""Entry point of the ``embstore`` console script."""

import signal
import sys

from . import _interrupted_while_starting
from .main import cli  # each command's module is imported when the command runs (main.COMMAND_MODULES)


def main() -> None:
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # commands clean up on KeyboardInterrupt
    try:
        cli(prog_name="embstore")
    except KeyboardInterrupt:  # outside a command (click's own parsing or exit): nothing was being written
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
