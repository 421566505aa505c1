"""`python -m workers` runs the `cascade` command."""

from workers.cli import main

main(prog_name="cascade")
