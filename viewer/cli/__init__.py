"""Command-line entry points: the GUI launcher and the batch command."""
