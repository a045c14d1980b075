"""The ``knowledger`` command's shared pieces: the Typer app, the consoles, and the one-line error exit.

Each command module registers its commands on ``app`` (``backend/cli/__init__.py`` imports them all).
Failures the user can fix print one line that names the option or environment variable to look at and exit
with code 2, never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from backend.chain.errors import ChainError
from backend.chain.settings import ChainSettings
from backend.core.errors import ExpectedStartupError
from backend.errors import AppError

app = typer.Typer(
    name="knowledger",
    help="KnowLedger: consent-gated recommendations with an on-chain consent registry and settlement ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
devnet_app = typer.Typer(
    help="A local anvil devnet (chain id 31337, deterministic accounts).", no_args_is_help=False
)
app.add_typer(devnet_app, name="devnet")

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

EXIT_USAGE = 2


def fail(message: str) -> NoReturn:
    """One line on stderr, exit code 2."""
    err.print(Text(f"error: {message}", style="bold red"))
    raise typer.Exit(EXIT_USAGE)


def _settings_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first.get("loc") else "?"
    return f"KNOWLEDGER_{field.upper()} is invalid: {first.get('msg', 'bad value')}"


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the chain layer's named errors and bad settings into a one-line message and exit code 2."""
    try:
        yield
    except ChainError as exc:
        fail(str(exc))
    except ExpectedStartupError as exc:
        fail(str(exc))
    except AppError as exc:  # a refusal the service would answer with a 4xx or 503
        fail(exc.message)
    except ValidationError as exc:
        fail(_settings_error(exc))
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if os.environ.get("KNOWLEDGER_DEBUG"):
            raise
        err.print(
            Text(f"error: unexpected {type(exc).__name__}: {exc} (set KNOWLEDGER_DEBUG=1 for the traceback)")
        )
        raise typer.Exit(1) from None


def load_settings() -> ChainSettings:
    try:
        return ChainSettings()
    except ValidationError as exc:
        fail(_settings_error(exc))
