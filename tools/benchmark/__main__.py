"""`python -m trikv.tools.benchmark ...` (see trikv.tools.benchmark.cli)."""

import sys

from trikv.tools.benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
