"""The `promptctl` console script: a clear word instead of a traceback on a client-only install."""

from __future__ import annotations

import sys
from importlib.util import find_spec

# What the command needs beyond the client's light dependencies (the `cli` extra).
COMMAND_NEEDS = ("click", "pygit2", "sqlalchemy", "alembic", "fastapi", "uvicorn")


def main() -> None:
    """Run promptctl, or say which install it needs when only the client is installed."""
    missing = [name for name in COMMAND_NEEDS if find_spec(name) is None]
    if missing:
        sys.exit(
            f"promptctl: this install has the runtime client only ({', '.join(missing)} "
            "missing). The command needs: pip install 'promptctl[cli]'"
        )
    from promptctl.cli.main import main as run

    run()
