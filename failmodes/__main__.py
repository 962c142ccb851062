"""``python -m failmodes`` runs the command line."""

import sys

from failmodes.cli import main

sys.exit(main())
