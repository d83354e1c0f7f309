"""`python -m node.sim ...`: the same as `leader-node simulate ...`."""

import sys

from node.sim.cli import main

sys.exit(main(sys.argv[1:]))
