"""The ``knowledger`` command (typer + rich): ``serve``, ``demo``, ``train``, ``evaluate``, ``deploy``,
``devnet``, ``audit`` and ``export-log``. ``backend.cli.app`` holds the app; each module registers its
commands on it."""

from backend.cli import audit, chain, ingest, model, service  # noqa: F401  (each registers its commands)
from backend.cli.app import app

__all__ = ["app"]
