"""The ``embstore`` command line: a thin click shell over the ``embstore`` library.

Until a command starts, Ctrl-C ends the process at once with "Interrupted." and exit code
130, as it does later: nothing has been written yet, and an interrupt that lands while
the modules are still being imported (on a busy machine, a second or more) must not print
a traceback. ``app.main`` hands SIGINT back to Python before it runs the command.
"""

import os as _os
import signal as _signal
import sys as _sys


def _interrupted_while_starting(signum, frame) -> None:
    _sys.stderr.write("Interrupted.\n")
    _sys.stderr.flush()
    _os._exit(130)


if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:  # not under a host that set its own
    _signal.signal(_signal.SIGINT, _interrupted_while_starting)
