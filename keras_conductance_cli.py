"""Launcher of the ``keras-conductance`` command (``python -m keras_conductance_cli``).

It lives outside the package on purpose: importing anything under
``keras_conductance`` imports TensorFlow, and two things must happen before
that. TensorFlow's C++ start-up lines ("failed call to cuInit" on every
machine without a GPU) read as errors to a command-line user and can only be
silenced before the import; and the closing "Done in N s" counts from here,
so the seconds spent importing TensorFlow are included. A library user's
program never passes through here and keeps its own logging.
"""

import os
import sys
import time

STARTED = time.time()


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # a level the user set wins
    from keras_conductance.cli import main as run

    return run(argv, started=STARTED)


if __name__ == "__main__":
    sys.exit(main())
