"""`python -m cli` runs promptctl."""

from cli.main import main

main()
