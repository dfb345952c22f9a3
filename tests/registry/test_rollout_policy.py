"""Rollout policies in promptctl.toml: read, chosen per prompt, refused by file, line and field."""

from __future__ import annotations

import pytest

from promptctl.registry.analysis import DEFAULT_GUARDS, Tolerance
from promptctl.registry.errors import InvalidPolicy, PolicyNotFound
from promptctl.registry.rollouts.policy import (
    BUILTIN,
    Policy,
    policy_problems,
    read_policies,
)

POLICIES = """\
[promptctl]
root = "prompts"

[rollout]
default = "standard"

[rollout.policies.standard]
steps = [1, 5, 25, 50]
min_calls = 200
min_minutes = 2
max_minutes = 30
on_inconclusive = "extend"

[rollout.policies.standard.guards]
error_rate = 0.02
latency = "20%"
quality = { tolerance = 0.05, required = true }
truncation = false

[rollout.policies.careful]
steps = [0.5, 2, 10]
min_minutes = 0.05
max_minutes = 0.25
on_inconclusive = "rollback"

[rollout.prompts]
"support/*" = "careful"
"billing/invoice" = "standard"
"""


def test_a_policy_is_read_with_its_steps_durations_and_guards():
    book = read_policies(POLICIES)
    policy = book.policies["standard"]
    assert policy.steps_bp == (100, 500, 2500, 5000)
    assert (policy.min_calls, policy.min_seconds, policy.max_seconds) == (200, 120.0, 1800.0)
    assert policy.on_inconclusive == "extend"
    guards = {g.metric: g for g in policy.guards}
    assert guards["error_rate"].tolerance == Tolerance.absolute_of(0.02)
    assert guards["latency"].tolerance == Tolerance.relative_of(0.20)
    assert guards["quality"].tolerance == Tolerance.absolute_of(0.05)
    assert guards["quality"].required is True
    assert "truncation" not in guards
    # the guards not named keep the analysis defaults
    assert guards["cost"] == next(g for g in DEFAULT_GUARDS if g.metric == "cost")


def test_sub_minute_durations_are_allowed():
    careful = read_policies(POLICIES).policies["careful"]
    assert careful.steps_bp == (50, 200, 1000)
    assert careful.min_seconds == pytest.approx(3.0)
    assert careful.max_seconds == pytest.approx(15.0)
    assert careful.min_calls == BUILTIN.min_calls  # unset: the built-in default


def test_the_policy_is_chosen_by_option_then_first_matching_glob_then_default():
    book = read_policies(POLICIES)
    assert book.choose("support/triage").name == "careful"
    assert book.choose("billing/invoice").name == "standard"
    assert book.choose("summarize").name == "standard"
    assert book.choose("support/triage", "standard").name == "standard"
    assert book.choose("summarize", "default") == BUILTIN


def test_without_a_rollout_table_every_prompt_gets_the_builtin_default():
    assert read_policies(None).choose("x") == BUILTIN
    assert read_policies('[promptctl]\nroot = "prompts"\n').choose("x") == BUILTIN


def test_an_unknown_policy_name_says_which_exist():
    expected = "no rollout policy 'carefull'.*did you mean 'careful'"
    with pytest.raises(PolicyNotFound, match=expected):
        read_policies(POLICIES).choose("x", "carefull")


def test_a_policy_survives_its_snapshot():
    policy = read_policies(POLICIES).policies["standard"]
    assert Policy.from_json(policy.to_json()) == policy


@pytest.mark.parametrize(
    ("line", "replacement", "where", "problem"),
    [
        (8, "steps = [5, 1, 25]", "rollout.policies.standard.steps", "step 2 (1 %) is not above"),
        (8, "steps = [1, 5, 100]", "rollout.policies.standard.steps", "step 3 is 100"),
        (8, "steps = [0, 5]", "rollout.policies.standard.steps", "step 1 is 0"),
        (8, "steps = []", "rollout.policies.standard.steps", "must be a list"),
        (9, "min_calls = -3", "rollout.policies.standard.min_calls", "-3 is not a whole"),
        (11, "max_minutes = 1", "rollout.policies.standard.max_minutes", "less than min_minutes"),
        (12, 'on_inconclusive = "wait"', "rollout.policies.standard.on_inconclusive", "'wait'"),
        (15, "error_rate = -0.01", "rollout.policies.standard.guards.error_rate", "harm >= 0"),
        (15, "speed = 0.1", "rollout.policies.standard.guards.speed", "unknown metric"),
        (16, "latency = 10", "rollout.policies.standard.guards.latency", "relative tolerance"),
        (16, 'latency = "ten%"', "rollout.policies.standard.guards.latency", "not a percentage"),
        (17, "quality = { tol = 1 }", "rollout.policies.standard.guards.quality.tol", "unknown"),
        (27, '"support/*" = "carefull"', "rollout.prompts.support/*", "no policy named"),
        (5, 'default = "nope"', "rollout.default", "no policy named 'nope'"),
    ],
)
def test_a_bad_policy_is_refused_naming_file_line_and_field(line, replacement, where, problem):
    lines = POLICIES.splitlines()
    lines[line - 1] = replacement
    text = "\n".join(lines) + "\n"
    with pytest.raises(InvalidPolicy) as caught:
        read_policies(text)
    error = caught.value
    assert (error.path, error.line, error.field) == ("promptctl.toml", line, where)
    assert problem in error.problem
    assert str(error).startswith(f"promptctl.toml:{line}: {where}: ")


def test_lint_gets_every_problem_at_once():
    text = POLICIES.replace("steps = [1, 5, 25, 50]", "steps = [50, 5]").replace(
        'on_inconclusive = "rollback"', 'on_inconclusive = "later"'
    )
    problems = policy_problems(text)
    assert [(p.line, p.field) for p in problems] == [
        (8, "rollout.policies.standard.steps"),
        (24, "rollout.policies.careful.on_inconclusive"),
    ]


def test_a_toml_syntax_error_is_a_policy_problem_with_its_line():
    problems = policy_problems("[rollout]\ndefault = \n")
    assert len(problems) == 1
    assert problems[0].line == 2
    assert "not valid TOML" in problems[0].problem
