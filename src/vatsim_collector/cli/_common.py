"""What every command group shares: the database URL option, settings that end the command
with a clear message when invalid, and configuration errors turned into an exit status."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer

from vatsim_collector.config import Settings, SettingsError, load_settings
from vatsim_collector.errors.exceptions import ConfigurationError

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL; default sqlite:///data/vatsim.db (env VATSIM_DATABASE_URL).",
        show_default=False,
    ),
]


def settings_or_exit(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@contextlib.contextmanager
def configuration_errors() -> Iterator[None]:
    """A sector or boundary file that cannot be used ends the command with its reason."""
    try:
        yield
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
