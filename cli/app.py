"""Entry point of the ``embstore`` console script."""

import signal

from . import _interrupted_while_starting
from .main import cli  # each command's module is imported when the command runs (main.COMMAND_MODULES)


def main() -> None:
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # commands clean up on KeyboardInterrupt
    cli(prog_name="embstore")


if __name__ == "__main__":
    main()
