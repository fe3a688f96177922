"""The `byline` command line: one module per command group."""
