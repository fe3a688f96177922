"""Byline's version, read by the CLI, the bot and the fetcher's User-Agent."""

__version__ = "0.1.0"
