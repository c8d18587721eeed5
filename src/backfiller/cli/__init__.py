"""The command-line interface (thin; the core never imports it)."""
