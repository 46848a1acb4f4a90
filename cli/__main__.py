"""`python -m cli` runs the `ferry` command."""

from cli.main import main

main()
