"""``python -m backend.cli``: the ``knowledger`` command."""

from backend.cli import app

app()
