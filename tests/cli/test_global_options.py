"""The options every command shares: before or after the command, name@ref, --json errors.

`repo` has support/triage v1..v3 and summarize v1 on main, and a second layout under
`patterns/` for the --root tests.
"""

from __future__ import annotations

import json

import click
import pytest

from promptctl.cli.main import cli

TRIAGE = "support/triage"


@pytest.fixture
def patterns(repo):
    """A second prompt folder: `patterns/greet.prompt`, committed."""
    repo.commit("patterns", {"patterns/greet.prompt": "Hello {{ who }}\n"})
    return repo


def names(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [line.split()[0] for line in result.stdout.splitlines()[1:]]


def test_a_repository_option_after_the_command_works_as_before_it(promptctl, patterns):
    before = promptctl("--root", "patterns", "list")
    after = promptctl("list", "--root", "patterns")

    assert names(after) == names(before) == ["greet"]


def test_an_option_given_before_and_after_the_command_takes_the_one_after(promptctl, patterns):
    assert names(promptctl("--root", "prompts", "list", "--root", "patterns")) == ["greet"]
    assert names(promptctl("--root", "patterns", "list", "--root", "prompts")) == [
        "summarize",
        TRIAGE,
    ]


def test_the_environment_variable_still_applies_and_an_option_after_the_command_wins(
    runner, patterns, monkeypatch
):
    monkeypatch.setenv("PROMPTCTL_REPO", str(patterns.path))
    monkeypatch.setenv("PROMPTCTL_ROOT", "patterns")

    assert names(runner.invoke(cli, ["list"])) == ["greet"]
    assert names(runner.invoke(cli, ["list", "--root", "prompts"])) == ["summarize", TRIAGE]


def test_options_after_a_subgroup_command_reach_it(promptctl, migrated_database_url, json_of):
    listed = json_of(promptctl("env", "list", "--json", "--database-url", migrated_database_url))

    assert len(listed) == 3


def test_option_values_after_the_command_are_checked_like_before_it(promptctl):
    result = promptctl("list", "--color", "purple")

    assert result.exit_code == 2
    assert "'purple' is not one of 'auto', 'always', 'never'" in result.stderr


def test_a_command_help_stays_short_and_says_where_the_global_options_are(runner):
    shown = runner.invoke(cli, ["list", "--help"]).stdout
    listed = [line.split()[0] for line in shown.splitlines() if line.startswith("  -")]

    assert listed == ["--rev", "--json", "-h,"]
    assert "may come before or after the command" in " ".join(shown.split())
    assert "--database-url" in runner.invoke(cli, ["--help"]).stdout


# -- name@ref -------------------------------------------------------------------------------


def test_diff_takes_name_at_ref_for_both_versions(promptctl):
    apart = promptctl("diff", TRIAGE, "v1", "v3")
    joined = promptctl("diff", f"{TRIAGE}@v1", f"{TRIAGE}@v3")
    mixed = promptctl("diff", f"{TRIAGE}@v1", "v3")

    assert apart.exit_code == 0, apart.output
    assert apart.stdout.startswith(f"{TRIAGE}: v1 -> v3")
    assert joined.stdout == apart.stdout == mixed.stdout


def test_diff_of_name_at_ref_alone_compares_it_with_the_working_tree(promptctl):
    assert promptctl("diff", f"{TRIAGE}@v1").stdout == promptctl("diff", TRIAGE, "v1").stdout


def test_diff_of_two_prompts_or_three_versions_is_refused(promptctl, fails):
    fails(
        promptctl("diff", f"{TRIAGE}@v1", "summarize@v1"),
        "diff compares two versions of one prompt: 'support/triage' and 'summarize'",
    )
    fails(promptctl("diff", f"{TRIAGE}@v1", "v2", "v3"), "diff takes two versions")


def test_rollback_takes_name_at_ref_like_to(run, json_of):
    for ref in ("v1", "v2", "v3"):
        json_of(run("promote", f"{TRIAGE}@{ref}", "--env", "staging", "--json"))

    rolled = json_of(run("rollback", f"{TRIAGE}@v1", "--env", "staging", "--json"))

    assert rolled["stable"]["label"] == "v1"
    assert run("rollback", f"{TRIAGE}@v1", "--env", "staging", "--to", "v2").exit_code == 1


# -- --json everywhere, and its errors ---------------------------------------------------------


def all_commands() -> list[tuple[str, click.Command]]:
    found = []
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", command.commands[sub]) for sub in command.commands]
        else:
            found.append((name, command))
    return found


# `serve` runs until stopped and prints no result; `review` writes its report with --format.
WITHOUT_JSON = {"serve", "review"}


@pytest.mark.parametrize(
    "command", [c for n, c in all_commands() if n not in WITHOUT_JSON], ids=lambda c: c.name
)
def test_every_command_takes_json(command):
    assert "as_json" in [p.name for p in command.params]


def test_an_error_under_json_is_a_json_object_on_stderr_with_the_same_exit_code(promptctl):
    result = promptctl("show", "sumarize", "--json")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert json.loads(result.stderr) == {
        "error": {
            "type": "PromptNotFound",
            "title": "Prompt not found",
            "detail": "unknown prompt 'sumarize' at working tree; did you mean 'summarize'?",
        }
    }


def test_a_usage_error_of_a_json_command_is_json_too(run):
    result = run("canary", TRIAGE, "--env", "staging", "--json")

    assert result.exit_code == 2
    error = json.loads(result.stderr)["error"]
    assert error["type"] == "UsageError"
    assert error["detail"] == "give exactly one of --weight, --complete, --abort"


@pytest.mark.parametrize(
    "args",
    [
        ("status", "--json", "--bogus"),
        ("history", TRIAGE, "--json", "--env"),
        ("status", "--json", "--timeout", "soon"),
    ],
    ids=["unknown option", "option without its value", "bad value"],
)
def test_a_command_line_refused_while_parsing_is_json_under_json(run, args):
    result = run(*args)

    assert result.exit_code == 2
    assert result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert error["type"] in ("NoSuchOption", "BadOptionUsage", "BadParameter", "UsageError")
    assert error["detail"]


def test_bundle_json_says_what_it_wrote(run, json_of, tmp_path):
    json_of(run("promote", "summarize", "--env", "staging", "--json"))
    target = tmp_path / "bundle.json"

    written = json_of(run("bundle", "--env", "staging", "-o", str(target), "--json"))

    assert written == {"environment": "staging", "path": str(target), "count": 1}
    assert target.exists()


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        (
            "PROMPTCTL_RENDER_TIMEOUT_SECONDS",
            "soon",
            "PROMPTCTL_RENDER_TIMEOUT_SECONDS: Input should be a valid number",
        ),
        (
            "PROMPTCTL_PRICES",
            '{"gpt-4o-mini": {"input": -1, "output": 2}}',
            "PROMPTCTL_PRICES (prices.gpt-4o-mini.input): Input should be greater than or "
            "equal to 0, got -1",
        ),
        ("PROMPTCTL_PRICES", "not json", "PROMPTCTL_PRICES: not valid JSON"),
    ],
    ids=["not a number", "a negative price", "not json"],
)
@pytest.mark.parametrize("command", [("list",), ("serve", "--port", "1")], ids=["list", "serve"])
def test_a_bad_setting_in_the_environment_is_one_line_naming_the_variable(
    runner, repo, monkeypatch, variable, value, said, command
):
    monkeypatch.setenv(variable, value)

    result = runner.invoke(cli, ["--repo", str(repo.path), *command])

    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: {said}")
    assert len(result.stderr.splitlines()) == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_bad_server_setting_is_one_line_naming_the_variable(runner, repo, monkeypatch):
    monkeypatch.setenv("PROMPTCTL_POLL_INTERVAL", "0")

    result = runner.invoke(cli, ["--repo", str(repo.path), "serve", "--port", "1"])

    assert result.exit_code == 1, result.output
    assert result.stderr == (
        "error: PROMPTCTL_POLL_INTERVAL: Input should be greater than 0, got '0'\n"
    )


def test_a_bad_setting_under_json_is_a_json_error(runner, repo, monkeypatch):
    monkeypatch.setenv("PROMPTCTL_PRICES", "not json")

    result = runner.invoke(cli, ["--repo", str(repo.path), "list", "--json"])

    assert result.exit_code == 1
    assert json.loads(result.stderr)["error"]["type"] == "ConfigError"
