"""``python -m s3pull`` runs the command line."""

import sys

from ._cli import main

sys.exit(main())
