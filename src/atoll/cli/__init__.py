"""The `atoll` command: one module per subcommand."""
