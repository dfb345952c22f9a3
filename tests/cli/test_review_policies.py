"""`review` shows a changed rollout policy (issue 17 §1): when promptctl.toml's `[rollout]`
table differs between base and head, the report lists the policies added, removed or
changed (the settings that differ, as the file writes them), the default and globs that
changed, and every prompt whose effective policy changes; an invalid head table fails the
review as lint does, naming its line and field.

The `repo` fixture (tests/cli/conftest.py) has support/triage and summarize on main.
"""

from __future__ import annotations

import json

BASE_POLICIES = """\
[rollout]
default = "careful"

[rollout.policies.careful]
steps = [1, 5, 25, 50]
min_calls = 500

[rollout.policies.careful.guards]
latency = "10%"

[rollout.prompts]
"support/*" = "careful"
"""

HEAD_POLICIES = """\
[rollout]
default = "careful"

[rollout.policies.careful]
steps = [5, 25, 50]
min_calls = 500

[rollout.policies.careful.guards]
latency = "5%"

[rollout.policies.fast]
steps = [10, 50]
min_minutes = 1

[rollout.prompts]
"support/*" = "careful"
"summar*" = "fast"
"""


def on_branch(repo, name: str, files: dict[str, str]) -> None:
    repo.git("checkout", "-q", "-b", name, "main")
    repo.commit(f"work on {name}", files)
    repo.git("checkout", "-q", "main")


def review(promptctl, head: str, *extra: str):
    return promptctl("review", "--base", "main", "--head", head, *extra)


def test_a_changed_policy_lists_its_settings_and_the_prompts_it_moves(promptctl, repo):
    repo.commit("rollout policies", {"promptctl.toml": BASE_POLICIES})
    on_branch(repo, "faster", {"promptctl.toml": HEAD_POLICIES})

    as_json = review(promptctl, "faster", "--json")
    assert as_json.exit_code == 0, as_json.output
    rollout = json.loads(as_json.stdout)["rollout_policies"]
    changes = {p["policy"]: p for p in rollout["policies"]}
    assert set(changes) == {"careful", "fast"}
    assert changes["careful"]["change"] == "changed"
    assert changes["careful"]["keys"] == [
        {
            "key": "guards.latency",
            "before": '"10%", required, min_count 50',
            "after": '"5%", required, min_count 50',
        },
        {"key": "steps", "before": "1%, 5%, 25%, 50%", "after": "5%, 25%, 50%"},
    ]
    fast = {k["key"]: (k["before"], k["after"]) for k in changes["fast"]["keys"]}
    assert changes["fast"]["change"] == "added"
    assert fast["steps"] == (None, "10%, 50%")
    assert fast["min_minutes"] == (None, "1")
    assert rollout["default"] is None
    assert rollout["prompt_globs"] == [{"key": "summar*", "before": None, "after": "fast"}]
    moved = {p["prompt"]: p for p in rollout["prompts"]}
    assert set(moved) == {"support/triage", "summarize"}
    assert (moved["summarize"]["before"], moved["summarize"]["after"]) == ("careful", "fast")
    assert moved["summarize"]["why"] == "[rollout.prompts] 'summar*' (was rollout.default)"
    assert moved["support/triage"]["why"] == "policy careful changed"
    assert rollout["problems"] == []

    markdown = review(promptctl, "faster").stdout
    assert "### Rollout policies (`promptctl.toml`)" in markdown
    assert (
        '| `careful` | changed | `guards.latency` | `"10%", required, min_count 50` '
        '| `"5%", required, min_count 50` |'
    ) in markdown
    assert "|  |  | `steps` | `1%, 5%, 25%, 50%` | `5%, 25%, 50%` |" in markdown
    assert "| `fast` | added | `alpha` | — | `0.05` |" in markdown
    assert "`[rollout.prompts]` `summar*`: — → `fast`" in markdown
    assert "Prompts whose rollout policy changes (2):" in markdown
    assert (
        "| `summarize` | `careful` | `fast` | [rollout.prompts] 'summar*' (was rollout.default) |"
    ) in markdown


def test_a_new_rollout_table_is_compared_with_the_built_in_default(promptctl, repo):
    on_branch(repo, "policies", {"promptctl.toml": BASE_POLICIES})
    rollout = json.loads(review(promptctl, "policies", "--json").stdout)["rollout_policies"]
    assert [p["policy"] for p in rollout["policies"]] == ["careful"]
    assert rollout["default"] == {"before": "default", "after": "careful"}
    assert {p["prompt"]: (p["before"], p["after"]) for p in rollout["prompts"]} == {
        "support/triage": ("default", "careful"),
        "summarize": ("default", "careful"),
    }


def test_an_invalid_policy_at_head_fails_the_review_naming_line_and_field(promptctl, repo):
    repo.commit("rollout policies", {"promptctl.toml": BASE_POLICIES})
    broken = HEAD_POLICIES.replace("steps = [10, 50]", "steps = [50, 10]")
    on_branch(repo, "broken", {"promptctl.toml": broken})

    result = review(promptctl, "broken", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    [problem] = report["rollout_policies"]["problems"]
    assert (problem["path"], problem["field"]) == ("promptctl.toml", "rollout.policies.fast.steps")
    assert problem["line"] == broken.splitlines().index("steps = [50, 10]") + 1
    assert "weights must rise" in problem["problem"]
    assert report["summary"]["lint_errors"] == 1
    markdown = review(promptctl, "broken").stdout
    assert "❌ fails: 1 lint error(s)" in markdown
    assert f"- line {problem['line']}, `rollout.policies.fast.steps`: step 2 (10" in markdown


def test_a_change_that_leaves_the_rollout_table_alone_shows_no_policy_section(promptctl, repo):
    repo.commit("rollout policies", {"promptctl.toml": BASE_POLICIES})
    # The file changes (a comment, another table), the [rollout] table does not.
    on_branch(repo, "other", {"promptctl.toml": "# policies\n" + BASE_POLICIES + "[other]\n"})
    result = review(promptctl, "other", "--json")
    assert json.loads(result.stdout)["rollout_policies"] is None
    assert "Rollout policies" not in review(promptctl, "other").stdout
