"""`python -m promptctl` runs the promptctl command."""

from promptctl.cli.main import main

main()
