"""The `deskflow` command group and the options its subcommands share."""

from __future__ import annotations

import click

__all__ = ["KEY", "LOG_LEVEL", "URL", "main"]

URL = click.option("--url", envvar="DESKFLOW_URL", default="http://127.0.0.1:8080",
                   show_default=True, help="Base URL of a running deskflow (env DESKFLOW_URL).")
KEY = click.option("--key", envvar="DESKFLOW_KEY", required=True,
                   help="API key to send as Bearer token (env DESKFLOW_KEY).")
LOG_LEVEL = click.option("--log-level", envvar="DESKFLOW_LOG_LEVEL", default="info",
                         show_default=True,
                         type=click.Choice(["debug", "info", "warning", "error"]),
                         help="Log level (env DESKFLOW_LOG_LEVEL). Logs are JSON lines on stderr.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """deskflow: scriptable automation for help desks."""
