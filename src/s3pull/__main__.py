"""``python -m s3pull`` runs the command line."""

from ._cli import run

run()
