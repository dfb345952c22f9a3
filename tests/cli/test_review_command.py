"""`promptctl review`: the report on stdout or in a file, and the exit code CI gates on.

Branches are made with `git` on top of the `repo` fixture: support/triage (chat,
includes partials/tone.j2) at v3 and summarize (text) at v1 on `main`.
"""

from __future__ import annotations

import json

import pytest

TRIAGE = "prompts/support/triage.prompt"
SUMMARIZE = "prompts/summarize.prompt"


def branch(repo, name: str, files: dict[str, str], *, start: str = "main") -> None:
    """Commit `files` on a new branch `name` made from `start`, then return to main."""
    repo.git("checkout", "-q", "-b", name, start)
    repo.commit(f"work on {name}", files)
    repo.git("checkout", "-q", "main")


def edited(repo, relpath: str, old: str, new: str) -> str:
    """The file's text on main with `old` replaced by `new` (which must be there)."""
    text = (repo.path / relpath).read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new)


@pytest.fixture
def clean(repo) -> str:
    branch(repo, "clean", {SUMMARIZE: "Summarise in one short line:\n{{ article }}\n"})
    return "clean"


@pytest.fixture
def breaking(repo) -> str:
    """triage gets a required variable without a default."""
    triage = edited(
        repo,
        TRIAGE,
        "  urgent: {type: boolean, default: false}\n",
        "  urgent: {type: boolean, default: false}\n  locale: {type: string}\n",
    )
    triage = triage.replace("tier: pro}", "tier: pro, locale: en}")
    triage = triage.replace("tags: [outage]}", "tags: [outage], locale: de}")
    triage = triage.replace("Tier: {{ tier }}.", "Tier: {{ tier }}. Locale: {{ locale }}.")
    branch(repo, "breaking", {TRIAGE: triage})
    return "breaking"


@pytest.fixture
def lint_error(repo) -> str:
    """triage uses a variable it does not declare, and also breaks callers (a narrower enum)."""
    triage = edited(repo, TRIAGE, "Tier: {{ tier }}.", "Tier: {{ tier }} for {{ team }}.")
    triage = triage.replace("enum: [free, pro, enterprise]", "enum: [free, pro]")
    branch(repo, "lint-error", {TRIAGE: triage})
    return "lint-error"


# -- exit codes -----------------------------------------------------------------------


def test_a_clean_change_exits_0_with_a_passing_result_line(promptctl, clean):
    result = promptctl("review", "--base", "main", "--head", clean)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "## promptctl review: `main` → `clean`"
    assert lines[2] == "**Result:** ✅ passes: no lint errors, no breaking changes."
    assert (
        "| Prompt | Change | Version | Breaking | Lint | Input tokens | Cost / 1k calls |" in lines
    )
    row = next(line for line in lines if line.startswith("| `summarize` |"))
    assert row.startswith("| `summarize` | changed | `v1` → ")
    assert "(new) | — | ✅ |" in row
    assert "1 other prompt(s) unchanged." in lines
    assert "+Summarise in one short line:" in result.stdout


def test_the_base_defaults_to_the_tracked_branch_and_the_head_to_head(promptctl, repo, clean):
    repo.git("checkout", "-q", clean)
    data = json.loads(promptctl("review", "--format", "json").stdout)
    assert (data["base"]["ref"], data["head"]["ref"]) == ("main", "HEAD")
    assert [p["prompt"] for p in data["prompts"]] == ["summarize"]
    assert data["exit_code"] == 0


def test_json_gives_the_report_with_its_exit_code(promptctl, clean):
    result = promptctl("review", "--base", "main", "--head", clean, "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["exit_code"] == 0
    assert data["summary"]["changed"] == 1
    [summarize] = data["prompts"]
    assert summarize["change"] == "changed"
    assert summarize["old"]["label"] == "v1"
    assert isinstance(summarize["tokens"]["before"], int)
    assert isinstance(summarize["tokens"]["after"], int)
    assert summarize["tokens"]["tokenizer"] == "o200k_base (estimate for unknown model)"
    assert "+Summarise in one short line:\n" in summarize["body_diff"]


def test_breaking_changes_exit_1_and_say_how_to_accept_them(promptctl, breaking):
    result = promptctl("review", "--base", "main", "--head", breaking)
    assert result.exit_code == 1
    assert result.stderr == (
        "review failed: 1 breaking change(s) (--allow-breaking to accept them)\n"
    )
    assert "- ⚠️ new required variable 'locale' without a default" in result.stdout
    assert result.stdout.splitlines()[2] == (
        "**Result:** ❌ fails: 1 breaking change(s) (accept with --allow-breaking)."
    )


def test_allow_breaking_accepts_breaking_changes(promptctl, breaking):
    result = promptctl(
        "review", "--base", "main", "--head", breaking, "--allow-breaking", "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data = json.loads(result.stdout)
    assert data["exit_code"] == 0
    assert data["prompts"][0]["breaking"] == [
        "new required variable 'locale' without a default: callers do not send it yet"
    ]


def test_lint_errors_exit_1_even_with_allow_breaking(promptctl, lint_error):
    result = promptctl(
        "review", "--base", "main", "--head", lint_error, "--allow-breaking", "--format", "json"
    )
    assert result.exit_code == 1
    assert result.stderr == "review failed: 1 lint error(s)\n"
    data = json.loads(result.stdout)
    assert data["exit_code"] == 1
    assert data["summary"]["lint_errors"] == 1
    [triage] = data["prompts"]
    assert [f["code"] for f in triage["lint"] if f["severity"] == "error"] == [
        "undeclared-variable"
    ]
    assert triage["breaking"] == ["variable 'tier' no longer accepts enterprise"]


def test_lint_errors_and_breaking_changes_are_both_named(promptctl, lint_error):
    result = promptctl("review", "--base", "main", "--head", lint_error)
    assert result.exit_code == 1
    assert result.stderr == (
        "review failed: 1 lint error(s); 1 breaking change(s) (--allow-breaking to accept them)\n"
    )
    lines = result.stdout.splitlines()
    assert lines[2] == "**Result:** ❌ fails: 1 lint error(s) and 1 breaking change(s)."
    row = next(line for line in lines if line.startswith("| `support/triage` |"))
    assert "| ⚠️ 1 | ❌ 1 error(s) |" in row
    assert any("undeclared-variable" in line and line.startswith("- ❌") for line in lines)


def test_output_writes_the_markdown_to_a_file_and_nothing_to_stdout(promptctl, clean, tmp_path):
    target = tmp_path / "review.md"
    result = promptctl("review", "--base", "main", "--head", clean, "--output", str(target))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == f"wrote the review of 1 prompt change(s) to {target}\n"
    text = target.read_text(encoding="utf-8")
    assert text.startswith("## promptctl review: `main` → `clean`\n")
    assert "**Result:** ✅ passes: no lint errors, no breaking changes." in text


def test_output_writes_json_and_still_fails_on_breaking_changes(promptctl, breaking, tmp_path):
    target = tmp_path / "review.json"
    result = promptctl(
        "review", "--base", "main", "--head", breaking, "--format", "json", "--output", str(target)
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"wrote the review of 1 prompt change(s) to {target}",
        "review failed: 1 breaking change(s) (--allow-breaking to accept them)",
    ]
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["exit_code"] == 1
    assert data["summary"]["breaking"] == 1


def test_output_into_a_missing_folder_is_one_clear_line(promptctl, clean, tmp_path, fails):
    target = tmp_path / "no-such-folder" / "review.md"
    fails(
        promptctl("review", "--base", "main", "--head", clean, "--output", str(target)),
        f"cannot write the review to {target}: No such file or directory",
    )


# -- bad input ------------------------------------------------------------------------


def test_an_unknown_base_is_one_clear_line(promptctl, fails):
    line = fails(promptctl("review", "--base", "no-such-branch"), "no-such-branch")
    assert "Traceback" not in line


def test_an_unknown_head_is_one_clear_line(promptctl, fails):
    fails(promptctl("review", "--base", "main", "--head", "no-such-branch"), "no-such-branch")


def test_a_base_that_is_not_an_ancestor_works_and_the_report_says_so(promptctl, repo):
    branch(repo, "left", {SUMMARIZE: "Left summary:\n{{ article }}\n"})
    branch(repo, "right", {"prompts/partials/tone.j2": "Be very brief.\n"})
    as_json = promptctl("review", "--base", "left", "--head", "right", "--format", "json")
    assert as_json.exit_code == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["base_is_ancestor"] is False
    assert [(p["prompt"], p["change"]) for p in data["prompts"]] == [
        ("summarize", "changed"),
        ("support/triage", "changed"),
    ]
    assert data["prompts"][1]["via_partials"] == ["partials/tone.j2"]
    [note] = data["notes"]
    assert note.startswith("left is not an ancestor of right: the report compares the two trees")
    markdown = promptctl("review", "--base", "left", "--head", "right")
    assert markdown.exit_code == 0
    assert f"> {note}" in markdown.stdout.splitlines()


def test_a_repository_without_prompts_works_and_says_so(promptctl, make_git_repo):
    empty = make_git_repo("no-prompts")
    empty.commit("readme", {"README.md": "Nothing here yet.\n"})
    result = promptctl("review", "--base", "main", "--head", "HEAD", repo=empty)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "No prompt changes (0 prompt(s) unchanged)." in lines
    assert "> no prompts under 'prompts' in main or HEAD" in lines
    assert "**Result:** ✅ passes: no lint errors, no breaking changes." in lines
    data = json.loads(promptctl("review", "--base", "main", "--format", "json", repo=empty).stdout)
    assert data["prompts"] == []
    assert data["notes"] == ["no prompts under 'prompts' in main or HEAD"]


def test_a_repository_without_commits_is_one_clear_line(promptctl, make_git_repo, fails):
    fails(promptctl("review", repo=make_git_repo("no-commits")), "main")


def test_a_binary_prompt_file_is_reported_for_that_prompt_without_a_traceback(promptctl, repo):
    repo.git("checkout", "-q", "-b", "binary")
    (repo.path / "prompts" / "logo.prompt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (repo.path / "prompts" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    repo.commit("an image where a prompt should be")
    repo.git("checkout", "-q", "main")
    result = promptctl("review", "--base", "main", "--head", "binary")
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stderr == "review failed: 1 lint error(s)\n"
    assert (
        "❌ **Does not load:** prompts/logo.prompt: binary file (contains NUL bytes), "
        "not a text prompt" in result.stdout
    )
    assert "| `logo` | added | — → — | — | ❌ does not load | — | — |" in (
        result.stdout.splitlines()
    )
    data = json.loads(
        promptctl("review", "--base", "main", "--head", "binary", "--format", "json").stdout
    )
    assert [p["prompt"] for p in data["prompts"]] == ["logo"]  # logo.png is not a prompt


def test_an_undecodable_prompt_file_is_reported_with_its_line(promptctl, repo):
    repo.git("checkout", "-q", "-b", "latin1")
    (repo.path / "prompts" / "cafe.prompt").write_bytes(
        "Line one.\nCaf\xe9 au lait.\n".encode("latin-1")
    )
    repo.commit("a latin-1 prompt")
    repo.git("checkout", "-q", "main")
    result = promptctl("review", "--base", "main", "--head", "latin1", "--format", "json")
    assert result.exit_code == 1
    [cafe] = json.loads(result.stdout)["prompts"]
    assert cafe["error"] == "prompts/cafe.prompt:2: not valid UTF-8 text"
    assert cafe["new"] is None


# -- what runs today ------------------------------------------------------------------


def test_a_released_prompt_shows_what_runs_today(run, repo, json_of):
    promoted = run("promote", "summarize", "--env", "staging")
    assert promoted.exit_code == 0, promoted.stderr
    digest = json_of(run("status", "summarize", "--json"))[0]["stable"]["digest"]
    branch(
        repo,
        "both",
        {
            SUMMARIZE: "Summarise in one short line:\n{{ article }}\n",
            "prompts/partials/tone.j2": "Be very brief.\n",
        },
    )
    data = json.loads(run("review", "--base", "main", "--head", "both", "--format", "json").stdout)
    assert data["environments"] == ["staging"]
    prompts = {p["prompt"]: p for p in data["prompts"]}
    [row] = prompts["summarize"]["environments"]
    assert row["environment"] == "staging"
    assert (row["stable"]["version"], row["stable"]["digest"]) == (1, digest)
    assert (row["canary"], row["weight"], row["weight_bp"]) == (None, None, 0)
    assert (row["compatible"], row["breaking"]) == (True, [])
    assert prompts["support/triage"]["environments"] == []
    markdown = run("review", "--base", "main", "--head", "both")
    assert markdown.exit_code == 0, markdown.stderr
    lines = markdown.stdout.splitlines()
    assert lines[4].endswith("| Cost / 1k calls | staging |")
    summary = next(line for line in lines if line.startswith("| `summarize` |"))
    assert summary.endswith("| `v1` ✅ |")
    triage = next(line for line in lines if line.startswith("| `support/triage` |"))
    assert triage.endswith("| — |")
    assert "**Running today**" in lines
    assert (
        "| Environment | Stable | Canary | Merging | Calls | Errors | p95 latency | Mean cost "
        "| Quality |" in lines
    )
    assert "| staging | `v1` | — | ✅ | — | — | — | — | — |" in lines
    assert "**Running today:** released nowhere yet." in lines


def test_a_canary_shows_with_its_weight(run, repo):
    assert run("promote", "summarize", "--env", "staging").exit_code == 0
    branch(repo, "canary", {SUMMARIZE: "Summarise in one short line:\n{{ article }}\n"})
    started = run("promote", "summarize@canary", "--env", "staging", "--canary", "12.5")
    assert started.exit_code == 0, started.stderr
    data = json.loads(
        run("review", "--base", "main", "--head", "canary", "--format", "json").stdout
    )
    [summarize] = data["prompts"]
    [row] = summarize["environments"]
    assert row["stable"]["label"] == "v1"
    assert row["canary"]["digest"] == summarize["new"]["digest"]
    assert (row["weight"], row["weight_bp"]) == (12.5, 1250)
    assert row["same_as_head"] is True
    markdown = run("review", "--base", "main", "--head", "canary").stdout
    label = summarize["new"]["digest"][:12]
    row_line = next(line for line in markdown.splitlines() if line.startswith("| `summarize` |"))
    assert row_line.endswith(f"| `v1` + `{label}` 12.5% ✅ |")
    assert f"| staging | `v1` | `{label}` at 12.5% | ✅ |" in markdown


def test_a_removed_prompt_that_is_released_is_a_breaking_change(run, repo):
    assert run("promote", "summarize", "--env", "staging").exit_code == 0
    repo.git("checkout", "-q", "-b", "drop-summarize")
    repo.git("rm", "-q", SUMMARIZE)
    repo.commit("drop summarize")
    repo.git("checkout", "-q", "main")
    result = run("review", "--base", "main", "--head", "drop-summarize", "--format", "json")
    assert result.exit_code == 1
    assert "1 breaking change(s)" in result.stderr
    [summarize] = json.loads(result.stdout)["prompts"]
    assert summarize["change"] == "removed"
    assert summarize["breaking"] == ["'summarize' is removed but released in staging"]
    accepted = run("review", "--base", "main", "--head", "drop-summarize", "--allow-breaking")
    assert accepted.exit_code == 0
    assert "- ⚠️ 'summarize' is removed but released in staging" in accepted.stdout


def test_without_a_database_there_is_no_release_section_and_nothing_is_created(
    promptctl, repo, clean
):
    before = sorted(p.name for p in repo.path.iterdir())
    markdown = promptctl("review", "--base", "main", "--head", clean)
    as_json = promptctl("review", "--base", "main", "--head", clean, "--format", "json")
    assert markdown.exit_code == 0
    assert "Running today" not in markdown.stdout
    assert "released nowhere" not in markdown.stdout
    assert json.loads(as_json.stdout)["prompts"][0]["environments"] is None
    assert not (repo.path / ".promptctl").exists()
    assert sorted(p.name for p in repo.path.iterdir()) == before


def test_the_review_shows_the_metrics_of_what_runs_today(run, repo, database_url):
    from fastapi.testclient import TestClient

    from promptctl.server.app import create_app
    from promptctl.server.settings import ServerSettings

    assert run("promote", "summarize", "--env", "staging").exit_code == 0
    settings = ServerSettings(repo=repo.path, database_url=database_url)
    with TestClient(create_app(settings)) as api:
        digest = api.get("/v1/prompts/summarize/resolve", params={"env": "staging"}).json()
        events = [
            {
                "event_id": f"review-{i}",
                "prompt": "summarize",
                "env": "staging",
                "digest": digest["digest"],
                "latency_ms": 100.0,
                "cost_usd": 0.002,
                "quality": 0.5,
                "error": i < 2,
            }
            for i in range(20)
        ]
        assert api.post("/v1/metrics", json={"events": events}).json()["accepted"] == 20
    branch(repo, "shorter", {SUMMARIZE: "Summarise in five words:\n{{ article }}\n"})
    result = run("review", "--base", "main", "--head", "shorter", "--format", "json")
    assert result.stdout, result.stderr
    prompts = json.loads(result.stdout)["prompts"]
    [summarize] = [p for p in prompts if p["prompt"] == "summarize"]
    [row] = summarize["environments"]
    assert row["metrics"]["count"] == 20
    assert row["metrics"]["error_rate"] == pytest.approx(0.1)
    assert row["metrics"]["mean_cost_usd"] == pytest.approx(0.002)
    assert row["metrics"]["mean_quality"] == pytest.approx(0.5)
    markdown = run("review", "--base", "main", "--head", "shorter").stdout
    assert "| staging | `v1` | — | ✅ | 20 | 10.0% | 100 ms | $0.002 | 0.5 |" in markdown
