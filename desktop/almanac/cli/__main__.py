"""Run as ``python -m almanac.cli``: the command line alone, never the window (the bare command
prints the usage), for scripts and for tests that must not load Qt."""

import sys

from almanac.cli import main

sys.exit(main())
