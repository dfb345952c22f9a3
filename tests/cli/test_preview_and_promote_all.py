"""Preview releases of unmerged branches, and `promote --all` / `--if-changed` for CI.

Runs on the `repo` fixture (support/triage v3 and summarize v1 on `main`) with the
test's own release database, SQLite and, when configured, PostgreSQL.
"""

from __future__ import annotations

import json

import pytest

SUMMARIZE = "prompts/summarize.prompt"
TRIAGE = "prompts/support/triage.prompt"
# Uses a variable it does not declare: a lint error, so it must not be released.
BROKEN = (
    "---\ninput:\n  ticket: {type: string}\nsamples:\n  - {ticket: hi}\n---\n"
    "{{ ticket }} for {{ team }}\n"
)


@pytest.fixture
def feature(repo) -> str:
    """A branch that changes summarize, not merged into main."""
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit(
        "shorter summaries", {SUMMARIZE: "Summarise in five words:\n{{ article }}\n"}
    )
    repo.git("checkout", "-q", "main")
    return "feature"


def history(run, json_of, name: str, environment: str | None = None) -> list[dict]:
    args = ["history", name, "--json"] + (["--env", environment] if environment else [])
    return json_of(run(*args))


# -- previews -------------------------------------------------------------------------


def test_a_branch_version_is_promoted_to_development_as_a_preview(
    run, repo, feature, json_of
):
    head = repo.git("rev-parse", "feature")
    result = run("promote", "summarize@feature", "--env", "development")
    assert result.exit_code == 0, result.stderr
    [state] = json_of(run("status", "summarize", "--json"))
    stable = state["stable"]
    assert state["environment"] == "development"
    assert stable["version"] is None
    assert stable["label"] == stable["digest"][:12]
    assert stable["source"] == f"feature@{head[:10]}"
    assert result.stdout == (
        f"summarize: {stable['digest'][:12]} (preview of feature@{head[:10]}) "
        "is stable in development\n"
    )
    table = run("status", "summarize")
    row = table.stdout.splitlines()[1].split()
    assert row[:5] == ["summarize", "development", stable["digest"][:12], "(preview", "of"]
    assert row[5] == f"feature@{head[:10]})"


def test_a_preview_is_refused_in_production_and_nothing_is_stored(run, feature, fails, json_of):
    assert run("promote", "summarize@feature", "--env", "development").exit_code == 0
    line = fails(
        run("promote", "summarize@feature", "--env", "production", "--yes"),
        "is not merged into the tracked branch",
    )
    assert "previews may go to unprotected environments only, not production" in line
    assert "from feature@" in line
    assert json_of(run("status", "summarize", "--env", "production", "--json")) == []
    assert history(run, json_of, "summarize", "production") == []
    assert [e["environment"] for e in history(run, json_of, "summarize")] == ["development"]


def test_a_preview_is_refused_in_production_even_with_force(run, feature, fails, json_of):
    fails(
        run("promote", "summarize@feature", "--env", "production", "--yes", "--force"),
        "is not merged into the tracked branch",
    )
    assert json_of(run("status", "--json")) == []


def test_after_the_merge_the_version_reaches_production_with_its_number(
    run, repo, feature, json_of
):
    assert run("promote", "summarize@feature", "--env", "development").exit_code == 0
    [preview] = json_of(run("status", "summarize", "--json"))
    repo.git("merge", "-q", "--no-ff", feature, "-m", "merge feature")
    result = run("promote", "summarize@main", "--env", "production", "--yes")
    assert result.exit_code == 0, result.stderr
    digest = preview["stable"]["digest"]
    assert result.stdout == f"summarize: v2 ({digest[:12]}) is stable in production\n"
    states = {s["environment"]: s["stable"] for s in json_of(run("status", "summarize", "--json"))}
    assert states["production"]["digest"] == digest
    assert states["production"]["version"] == 2
    assert states["production"]["label"] == "v2"
    # The preview in development is the same content: it shows its number now too.
    assert states["development"]["version"] == 2


def test_a_preview_needs_no_yes_in_an_unprotected_environment_but_production_does(
    run, repo, fails
):
    fails(run("promote", "summarize", "--env", "production"), "production")
    assert run("promote", "summarize", "--env", "production", "--yes").exit_code == 0


# -- promote --if-changed ---------------------------------------------------------------


def test_if_changed_is_idempotent_for_one_prompt(run, json_of):
    first = run("promote", "summarize", "--env", "staging", "--if-changed")
    assert first.exit_code == 0, first.stderr
    assert first.stdout.startswith("summarize: v1 (")
    assert first.stdout.endswith(") is stable in staging\n")
    second = run("promote", "summarize", "--env", "staging", "--if-changed")
    assert second.exit_code == 0, second.stderr
    assert second.stdout.endswith("is already stable in staging; unchanged\n")
    assert len(history(run, json_of, "summarize", "staging")) == 1


def test_promoting_the_stable_version_again_without_if_changed_is_an_error(run, fails):
    assert run("promote", "summarize", "--env", "staging").exit_code == 0
    fails(run("promote", "summarize", "--env", "staging"), "already stable in staging")


# -- promote --all ----------------------------------------------------------------------


def test_promote_all_promotes_every_prompt_then_finds_them_all_unchanged(run, json_of):
    first = run("promote", "--all", "--env", "staging", "--json")
    assert [(r["prompt"], r["result"]) for r in json_of(first)] == [
        ("summarize", "promoted"),
        ("support/triage", "promoted"),
    ]
    logged = {n: len(history(run, json_of, n)) for n in ("summarize", "support/triage")}
    assert logged == {"summarize": 1, "support/triage": 1}
    second = run("promote", "--all", "--env", "staging")
    assert second.exit_code == 0, second.stderr
    assert second.stdout.splitlines() == [
        "summarize: unchanged (v1)",
        "support/triage: unchanged (v3)",
    ]
    assert {n: len(history(run, json_of, n)) for n in logged} == logged
    states = json_of(run("status", "--env", "staging", "--json"))
    assert [(s["prompt"], s["stable"]["label"], s["revision"]) for s in states] == [
        ("summarize", "v1", 1),
        ("support/triage", "v3", 1),
    ]


def test_promote_all_promotes_only_the_prompts_that_changed(run, repo, json_of):
    assert run("promote", "--all", "--env", "staging").exit_code == 0
    repo.commit(
        "shorter summaries", {SUMMARIZE: "Summarise in five words:\n{{ article }}\n"}
    )
    result = run("promote", "--all", "--env", "staging", "--json")
    assert [(r["prompt"], r["result"], r["label"]) for r in json_of(result)] == [
        ("summarize", "promoted", "v2"),
        ("support/triage", "unchanged", "v3"),
    ]
    assert len(history(run, json_of, "summarize", "staging")) == 2
    assert len(history(run, json_of, "support/triage", "staging")) == 1


def test_promote_all_at_a_tag_promotes_the_versions_there(run, json_of):
    result = run("promote", "--all", "release-1", "--env", "staging", "--json")
    assert [(r["prompt"], r["label"]) for r in json_of(result)] == [
        ("summarize", "v1"),
        ("support/triage", "v1"),
    ]


def test_a_prompt_failing_lint_fails_promote_all_while_the_others_are_promoted(
    run, repo, json_of
):
    repo.commit("a broken prompt", {"prompts/broken.prompt": BROKEN})
    result = run("promote", "--all", "--env", "staging", "--json")
    assert result.exit_code == 1
    # Under --json the error is a JSON object too (stdout keeps every prompt's result).
    assert json.loads(result.stderr)["error"] == {
        "type": "PromoteAllFailed",
        "title": "Promotions failed",
        "detail": "1 of 3 prompt(s) could not be promoted to staging",
    }
    assert "Traceback" not in result.output
    rows = {r["prompt"]: r for r in json.loads(result.stdout)}
    assert rows["broken"]["result"] == "failed"
    assert "lint" in rows["broken"]["error"]
    assert "team" in rows["broken"]["error"]
    assert (rows["summarize"]["result"], rows["support/triage"]["result"]) == (
        "promoted",
        "promoted",
    )
    released = [s["prompt"] for s in json_of(run("status", "--env", "staging", "--json"))]
    assert released == ["summarize", "support/triage"]
    assert history(run, json_of, "broken") == []
    again = run("promote", "--all", "--env", "staging")
    assert again.exit_code == 1
    assert again.stdout.splitlines()[1:] == [
        "summarize: unchanged (v1)",
        "support/triage: unchanged (v3)",
    ]
    assert again.stdout.splitlines()[0].startswith("broken: failed (")


def test_promote_all_with_force_releases_a_prompt_failing_lint_and_logs_it(
    run, repo, json_of
):
    repo.commit("a broken prompt", {"prompts/broken.prompt": BROKEN})
    result = run("promote", "--all", "--env", "staging", "--force")
    assert result.exit_code == 0, result.stderr
    [entry] = history(run, json_of, "broken")
    assert entry["forced"] is True


def test_promote_all_to_a_protected_environment_needs_yes(run, json_of):
    refused = run("promote", "--all", "--env", "production")
    assert refused.exit_code == 1
    lines = refused.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "summarize: failed",
        "support/triage: failed",
    ]
    assert all("production is protected" in line for line in lines)
    assert refused.stderr == "error: 2 of 2 prompt(s) could not be promoted to production\n"
    assert json_of(run("status", "--json")) == []
    assert run("promote", "--all", "--env", "production", "--yes").exit_code == 0
    assert len(json_of(run("status", "--env", "production", "--json"))) == 2


def test_promote_all_with_a_name_is_a_usage_error(run, fails):
    fails(run("promote", "summarize", "--all", "--env", "staging"), "give no NAME")
