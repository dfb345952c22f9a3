"""The read commands start without the database and HTTP layers."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from promptctl.cli.main import COMMAND_MODULES, cli

SERVICE_LIBRARIES = ("sqlalchemy", "alembic", "httpx", "fastapi", "starlette", "uvicorn")


def test_importing_the_cli_leaves_the_service_libraries_out(project_root):
    code = (
        "import sys, promptctl.cli.main\n"
        f"print(' '.join(m for m in {SERVICE_LIBRARIES!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=project_root, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == []


def test_help_still_lists_the_commands_of_every_module():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line}
    assert {"log", "list", "lint", "promote", "review", "serve", "env"} <= listed


def test_a_command_from_another_module_runs_without_listing_first():
    result = CliRunner().invoke(cli, ["env", "--help"])
    assert result.exit_code == 0
    assert "environments" in result.stdout


def test_each_command_module_registers_the_commands_the_group_expects_of_it(project_root):
    # A command runs after importing only the module COMMAND_MODULES names for it: that
    # import must register it, and every command of every module must be named.
    code = (
        "import importlib, sys\n"
        "from promptctl.cli.main import cli\n"
        "before = set(cli.commands)\n"
        "for module in sys.argv[1:]:\n"
        "    importlib.import_module(module)\n"
        "print(' '.join(sorted(set(cli.commands) - before)))"
    )

    def registered(*modules: str) -> set[str]:
        result = subprocess.run(
            [sys.executable, "-c", code, *modules],
            cwd=project_root,
            capture_output=True,
            text=True,
            check=True,
        )
        return set(result.stdout.split())

    for module, names in COMMAND_MODULES.items():
        assert set(names) <= registered(module), module
    every = {name for names in COMMAND_MODULES.values() for name in names}
    assert registered(*COMMAND_MODULES) == every
