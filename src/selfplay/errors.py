"""The error every layer raises for bad input (a config, a data file, a CLI argument).

It lives alone at the bottom of the package, so tasks, generation and the config can all raise it
without importing each other; the CLI prints it as one line.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration or input problem, reported to the user as one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
