"""How every command fails: one line on stderr and exit 1, usage errors exit 2, no traceback."""

from __future__ import annotations

import pytest

from promptctl.cli.main import cli

COMMANDS = ["init", "list", "show", "log", "render", "diff", "lint"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--rev", "nope"], "error: unknown git revision 'nope'"),
        (["show", "support/triage@HEAD~9"], "has no version 'HEAD~9'"),
        (["log", "support/tri age"], "invalid prompt name 'support/tri age'"),
        (["render", "ghost"], "unknown prompt 'ghost' at working tree"),
        (["diff", "support/triage", "nope"], "has no version 'nope'"),
        (["lint", "--rev", "nope"], "unknown git revision 'nope'"),
    ],
)
def test_a_registry_error_is_one_line_on_stderr_with_exit_1(promptctl, fails, args, message):
    fails(promptctl(*args), message)


@pytest.mark.parametrize("command", ["list", "lint"])
def test_a_folder_outside_any_repository_is_a_clean_error(runner, tmp_path, fails, command):
    result = runner.invoke(cli, ["--repo", str(tmp_path / "nowhere"), command])
    fails(result, "is not inside a git repository (run 'promptctl init' to make one)")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('root = "unclosed\n', "promptctl.toml: "),
        ('colour = "blue"\n', "unknown key(s) colour"),
        ('pattern = "flat.md"\n', "must contain '{name}' exactly once"),
    ],
)
def test_a_bad_promptctl_toml_is_a_clean_error(promptctl, repo, fails, config, message):
    repo.write("promptctl.toml", config)
    fails(promptctl("list"), message)


def test_a_bad_pattern_option_is_a_clean_error(promptctl, fails):
    fails(promptctl("--pattern", "no-name.md", "list"), "pattern 'no-name.md' must contain")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["show"],
        ["render"],
        ["log"],
        ["diff"],
        ["list", "--colour"],
        ["render", "summarize", "--sample", "two"],
        ["render", "summarize", "--vars-file", "/does/not/exist.json"],
        ["diff", "a", "b", "c", "d"],
    ],
)
def test_usage_errors_exit_2_with_usage_on_stderr(promptctl, args):
    result = promptctl(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Usage: " in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_from_its_docstring_and_a_json_option(runner, command):
    result = runner.invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: cli {command} ")
    assert "--json" in result.stdout
    summary = cli.commands[command].help.splitlines()[0]
    assert " ".join(summary.split()) in " ".join(result.stdout.split())


def test_the_group_lists_every_read_command_and_knows_its_version(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert f"  {command} " in result.stdout
    version = runner.invoke(cli, ["--version"])
    assert version.exit_code == 0
    assert "0.1.0" in version.stdout


def test_read_commands_create_no_files_in_the_repository(promptctl, repo):
    for args in (["list"], ["show", "summarize"], ["log", "summarize"], ["lint"],
                 ["render", "summarize", "--var", "article=a"], ["diff", "summarize"]):
        assert promptctl(*args).exit_code == 0
    assert repo.git("status", "--porcelain", "--ignored") == ""
