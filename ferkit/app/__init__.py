"""Application layer: the CLI, the web server and page."""
