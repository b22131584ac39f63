"""Run as ``python -m almanac``."""

import sys

from almanac.launcher import main

sys.exit(main())
