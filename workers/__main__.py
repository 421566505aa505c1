"""`python -m workers` runs the `cascade` command."""

from cascade.workers.cli.main import main

main(prog_name="cascade")
