"""Byline's Discord adapter: renders what the Retriever returns into Discord replies."""
