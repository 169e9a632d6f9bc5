"""``python -m maskwatch`` runs the command line."""

from maskwatch.cli import main

main()
