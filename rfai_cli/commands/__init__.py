"""One module per subcommand: a thin Typer function that parses options and calls the core."""
