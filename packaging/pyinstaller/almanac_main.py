"""Entry point of the one-folder app: the same command line as ``almanac`` (no arguments: GUI)."""

import multiprocessing
import sys

from almanac.launcher import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # torch and tokenizers may start worker processes
    sys.exit(main())
