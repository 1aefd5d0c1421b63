"""`python -m daytrade` is the same as the `daytrade` console script."""

import sys

from daytrade.cli import main

sys.exit(main())
