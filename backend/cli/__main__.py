"""``python -m backend.cli``: the ``knowledger`` command."""

from backend.cli import app

if __name__ == "__main__":  # not when a worker process started by `serve --workers` imports it
    app()
