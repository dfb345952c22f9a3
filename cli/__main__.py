"""`python -m promptctl.cli` runs the promptctl command."""

from promptctl.cli.main import main

main()
