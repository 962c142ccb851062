"""``python -m failmodes`` runs the command line."""

import sys

from failmodes.cli import main

if __name__ == "__main__":
    sys.exit(main())
