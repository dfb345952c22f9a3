"""`python -m promptctl` runs the promptctl command (or says which install it needs)."""

from promptctl.cli.entry import main

main()
