"""Peer client scripts. Each runs inside its own venv (bench/.venvs/NAME) as a
stand-alone program, so nothing here imports the bench package."""
