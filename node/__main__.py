"""`python -m node run --config PATH` (the same as the `leader-node` console script)."""

import sys

from node.cli import main

sys.exit(main())
