"""The review a pull-request reviewer wants (issue 14 §4), one test per friction seen:

- front-matter changes were cut until both sides looked identical;
- samples were printed whole before and after (55 lines for a one-word change);
- what runs in each environment today sat at the bottom, without saying whom it breaks;
- the result showed ❌ when --allow-breaking made it pass;
- no token or cost figures per call, no size cap (GitHub rejects comments over 65,536
  characters), no `-o` and no `--json` on review.

Branches are made with `git` on top of the `repo` fixture (tests/cli/conftest.py):
support/triage (chat, includes partials/tone.j2) at v3 and summarize (text) at v1 on main.
"""

from __future__ import annotations

import json
import re

import pytest

MAX_CHARS = 60_000  # the cap the review keeps by default

TRIAGE = "prompts/support/triage.prompt"
SUMMARIZE = "prompts/summarize.prompt"
PRICES = '{"gpt-4o-mini": {"input": 1.5, "output": 6.0}}'


def branch(repo, name: str, files: dict[str, str], *, start: str = "main") -> None:
    repo.git("checkout", "-q", "-b", name, start)
    repo.commit(f"work on {name}", files)
    repo.git("checkout", "-q", "main")


def edited(repo, relpath: str, *pairs: tuple[str, str]) -> str:
    text = (repo.path / relpath).read_text(encoding="utf-8")
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return text


def code_blocks(markdown: str) -> list[list[str]]:
    """The lines of every fenced code block."""
    blocks, current = [], None
    for line in markdown.splitlines():
        if re.fullmatch(r"`{3,}\w*", line):
            if current is None:
                current = []
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.append(line)
    assert current is None, "a code block is not closed"
    return blocks


def result_line(markdown: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith("**Result:**"))


# -- front matter ---------------------------------------------------------------------


def test_a_long_front_matter_value_shows_in_full_on_both_sides(promptctl, repo):
    """Both descriptions share their first 80 characters: a cut value looked unchanged."""
    shared = "Triage a support ticket for the billing, outage and account queues of our product"
    triage = edited(
        repo,
        TRIAGE,
        ("description: Triage a support ticket", f"description: {shared}, politely"),
    )
    branch(repo, "base-description", {TRIAGE: triage})
    triage = triage.replace(f"{shared}, politely", f"{shared}, briefly")
    branch(repo, "description", {TRIAGE: triage}, start="base-description")
    result = promptctl("review", "--base", "base-description", "--head", "description")
    assert result.exit_code == 0, result.stderr
    [block] = [b for b in code_blocks(result.stdout) if any("description:" in x for x in b)]
    assert block == [f"-description: {shared}, politely", f"+description: {shared}, briefly"]
    assert "**`description` changed**" in result.stdout
    data = json.loads(
        promptctl("review", "--base", "base-description", "--head", "description", "--json").stdout
    )
    [change] = data["prompts"][0]["front_matter"]
    assert change["new"] == f"{shared}, briefly"
    assert change["new_yaml"] == f"description: {shared}, briefly\n"


def test_a_changed_nested_key_is_a_diff_of_its_yaml_with_the_whole_key_around_it(promptctl, repo):
    triage = edited(repo, TRIAGE, ("owner: support-team", "owner: billing-team"))
    triage = triage.replace("enum: [free, pro, enterprise]", "enum: [free, pro, enterprise, vip]")
    branch(repo, "nested", {TRIAGE: triage})
    result = promptctl("review", "--base", "main", "--head", "nested")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "- `owner`: `support-team` → `billing-team`" in lines
    [block] = [b for b in code_blocks(result.stdout) if b and b[0] == " input:"]
    assert "+    - vip" in block
    assert "     - enterprise" in block
    assert " tags:" not in block  # another key's lines are not in this key's diff
    assert "   urgent:" in block  # the whole key is shown around the change


# -- samples --------------------------------------------------------------------------


def test_a_one_word_change_is_a_few_diff_lines_and_unchanged_samples_one_line(promptctl, repo):
    triage = edited(repo, TRIAGE, ("URGENT.", "VERY URGENT."))
    branch(repo, "one-word", {TRIAGE: triage})
    result = promptctl("review", "--base", "main", "--head", "one-word")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    title = next(line for line in lines if line.startswith("**Sample 2 rendered ("))
    assert '"urgent": true' in title
    block = next(b for b in code_blocks(result.stdout) if b[0] == "--- sample 2 @ v3")
    assert "-URGENT." in block
    assert "+VERY URGENT." in block
    assert len(block) <= 12, block  # the hunk, not the whole rendering twice
    # Sample 1 is not urgent: its rendering did not change, and one line says so.
    assert "Sample 1 renders the same before and after." in lines
    assert not any(b[0].startswith("--- sample 1") for b in code_blocks(result.stdout))
    assert "--- before" not in result.stdout


# -- environments ---------------------------------------------------------------------


@pytest.fixture
def environments(run, repo) -> str:
    """summarize v1 (declares no input) runs in production, v2 (declares `article`) in
    staging with a v1 canary; the branch adds an optional variable to v2."""
    repo.commit(
        "summarize declares its input",
        {SUMMARIZE: "---\ninput:\n  article: {type: string}\n---\nSummarise:\n{{ article }}\n"},
    )
    for args in (
        ("promote", "summarize@v1", "--env", "production", "--yes"),
        ("promote", "summarize@v2", "--env", "staging"),
        ("promote", "summarize@v1", "--env", "staging", "--canary", "5"),
    ):
        done = run(*args)
        assert done.exit_code == 0, done.output
    text = (
        "---\ninput:\n  article: {type: string}\n  audience: {type: string, default: all}\n"
        "---\nSummarise for {{ audience }}:\n{{ article }}\n"
    )
    branch(repo, "audience", {SUMMARIZE: text})
    return "audience"


def test_the_summary_says_what_runs_in_each_environment_and_whom_the_change_breaks(
    run, environments
):
    result = run("review", "--base", "main", "--head", environments)
    assert result.exit_code == 0, result.stderr  # base to head breaks nobody
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| Prompt |"))
    first_section = next(i for i, line in enumerate(lines) if line.startswith("### "))
    assert header < first_section  # the summary comes first, the details after
    assert lines[header].endswith("| Cost / 1k calls | staging | production |")
    row = next(line for line in lines if line.startswith("| `summarize` |"))
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert cells[-2] == "`v2` + `v1` 5% ⚠️ breaking (1)"  # the v1 canary gets the same calls
    assert cells[-1] == "`v1` ⚠️ breaking (1)"
    assert lines[2] == "**Result:** ✅ passes: no lint errors, no breaking changes."
    assert (
        "> ⚠️ The change breaks callers of what runs today in staging, production: see the "
        "environment columns before promoting it there." in lines
    )
    assert (
        "- ⚠️ production: against v1 (stable): new required variable 'article' without a "
        "default: callers do not send it yet" in lines
    )
    data = json.loads(run("review", "--base", "main", "--head", environments, "--json").stdout)
    staging, production = data["prompts"][0]["environments"]
    assert staging["environment"] == "staging"
    assert (staging["stable"]["version"], staging["canary"]["version"]) == (2, 1)
    assert (staging["weight"], staging["weight_bp"]) == (5.0, 500)
    assert [c["against"] for c in staging["conflicts"]] == ["v1 (canary)"]
    assert (production["compatible"], production["stable"]["version"]) == (False, 1)
    assert [c["code"] for c in production["conflicts"]] == ["required-variable"]


def test_a_head_version_compatible_everywhere_is_marked_so_in_each_environment(run, repo):
    assert run("promote", "summarize", "--env", "staging").exit_code == 0
    branch(repo, "wording", {SUMMARIZE: "Summarise in a single line:\n{{ article }}\n"})
    result = run("review", "--base", "main", "--head", "wording")
    assert result.exit_code == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("| `summarize` |"))
    assert row.endswith("| `v1` ✅ |")
    assert "breaks callers of what runs today" not in result.stdout


# -- the result line and the exit code ------------------------------------------------


@pytest.fixture
def breaking(repo) -> str:
    triage = edited(
        repo,
        TRIAGE,
        (
            "  urgent: {type: boolean, default: false}\n",
            "  urgent: {type: boolean, default: false}\n  locale: {type: string}\n",
        ),
        ("tier: pro}", "tier: pro, locale: en}"),
        ("tags: [outage]}", "tags: [outage], locale: de}"),
    )
    branch(repo, "breaking", {TRIAGE: triage})
    return "breaking"


@pytest.fixture
def lint_error(repo) -> str:
    triage = edited(repo, TRIAGE, ("Tier: {{ tier }}.", "Tier: {{ tier }} for {{ team }}."))
    branch(repo, "lint-error", {TRIAGE: triage})
    return "lint-error"


@pytest.mark.parametrize(
    ("head", "flags", "code", "line"),
    [
        ("breaking", (), 1, "❌ fails: 1 breaking change(s) (accept with --allow-breaking)."),
        (
            "breaking",
            ("--allow-breaking",),
            0,
            "✅ passes (1 breaking change(s) allowed by --allow-breaking).",
        ),
        ("lint-error", (), 1, "❌ fails: 1 lint error(s)."),
        ("lint-error", ("--allow-breaking",), 1, "❌ fails: 1 lint error(s)."),
    ],
)
def test_the_result_line_agrees_with_the_exit_code(
    promptctl, breaking, lint_error, head, flags, code, line
):
    result = promptctl("review", "--base", "main", "--head", head, *flags)
    assert result.exit_code == code
    assert result_line(result.stdout) == f"**Result:** {line}"
    data = json.loads(
        promptctl("review", "--base", "main", "--head", head, "--json", *flags).stdout
    )
    assert data["result"] == {"passed": code == 0, "exit_code": code, "text": line}
    assert data["exit_code"] == code


# -- tokens, cost, budget -------------------------------------------------------------


def test_tokens_and_cost_per_1000_calls_before_and_after_with_the_price_source(
    promptctl, repo, monkeypatch
):
    monkeypatch.setenv("PROMPTCTL_PRICES", PRICES)
    triage = edited(
        repo,
        TRIAGE,
        ("params: {temperature: 0.2}", "params: {temperature: 0.2, max_tokens: 300}"),
        ("Triage now.", "Triage now. Read the whole ticket before you decide anything."),
    )
    branch(repo, "longer", {TRIAGE: triage})
    data = json.loads(promptctl("review", "--base", "main", "--head", "longer", "--json").stdout)
    cost = data["prompts"][0]["cost"]
    before, after = cost["before"], cost["after"]
    assert (before["output_tokens"], before["output_basis"]) == (None, None)
    assert (after["output_tokens"], after["output_basis"]) == (300, "params.max_tokens")
    assert after["input_basis"] == "mean of 2 samples"
    assert after["input_tokens"] > before["input_tokens"]
    assert before["cost_usd_per_1k_calls"] == pytest.approx(before["input_tokens"] * 1.5 / 1000)
    assert after["cost_usd_per_1k_calls"] == pytest.approx(
        (after["input_tokens"] * 1.5 + 300 * 6.0) / 1000
    )
    assert data["prices"]["source"].startswith("PROMPTCTL_PRICES")
    markdown = promptctl("review", "--base", "main", "--head", "longer").stdout
    lines = markdown.splitlines()
    assert "**Tokens and cost** (model `gpt-4o-mini`; counted with o200k_base)" in lines
    assert "| Output tokens (assumed) | not counted (no `params.max_tokens` or budget) | " in (
        "\n".join(lines)
    )
    assert any(line.startswith("| Input tokens per call (mean of 2 samples) | ") for line in lines)
    footer = next(line for line in lines if line.startswith("<sub>Input tokens:"))
    assert "Prices: PROMPTCTL_PRICES" in footer
    assert lines[-1] == "<sub>Generated by `promptctl review`.</sub>"


def test_a_change_that_crosses_its_budget_is_flagged(promptctl, repo, monkeypatch):
    monkeypatch.setenv("PROMPTCTL_PRICES", PRICES)
    with_budget = edited(
        repo,
        TRIAGE,
        (
            "owner: support-team",
            "owner: support-team\nbudget: {input_tokens: 60, output_tokens: 50}",
        ),
    )
    branch(repo, "budgeted", {TRIAGE: with_budget})
    longer = with_budget.replace(
        "Triage now.", "Triage now. " + "Read every line of the ticket twice. " * 4
    )
    branch(repo, "over-budget", {TRIAGE: longer}, start="budgeted")
    result = promptctl("review", "--base", "budgeted", "--head", "over-budget", "--json")
    [triage] = json.loads(result.stdout)["prompts"]
    assert triage["cost"]["after"]["output_basis"] == "budget.output_tokens"
    assert triage["cost"]["after"]["output_tokens"] == 50
    [finding] = triage["budget"]["exceeded"]
    before_max = triage["cost"]["before"]["max_input_tokens"]
    assert before_max <= 60
    assert finding.startswith("input tokens ")
    assert finding.endswith(f"exceed the budget of 60 (was {before_max}: this change crosses it)")
    # Lint counts the same tokens against the same budget (and fails the sample).
    [lint] = [f for f in triage["lint"] if f["code"] == "input-over-budget"]
    assert (
        f"renders to {triage['cost']['after']['max_input_tokens']} input tokens"
        in (lint["message"])
    )
    markdown = promptctl("review", "--base", "budgeted", "--head", "over-budget").stdout
    row = next(line for line in markdown.splitlines() if line.startswith("| `support/triage` |"))
    assert "⚠️ over budget" in row
    assert f"- ⚠️ {finding}" in markdown.splitlines()


# -- the size cap ---------------------------------------------------------------------


@pytest.fixture
def big_change(repo) -> str:
    """Forty prompts whose long bodies and samples all change: far over the cap."""
    paragraph = "".join(
        f"Rule {n}: answer the {{{{ topic }}}} question carefully.\n" for n in range(40)
    )

    def prompt(tone: str) -> str:
        return (
            "---\ninput:\n  topic: {type: string}\nsamples:\n  - {topic: billing}\n"
            f"  - {{topic: outages}}\n---\n{tone}\n{paragraph}"
        )

    repo.commit(
        "many prompts", {f"prompts/bulk/p{n:02}.prompt": prompt("Be kind.") for n in range(40)}
    )
    branch(
        repo,
        "big",
        {f"prompts/bulk/p{n:02}.prompt": prompt("Be brief.\n" + paragraph) for n in range(40)},
    )
    return "big"


def test_a_big_change_set_stays_under_the_cap_and_says_how_to_see_it_all(
    promptctl, big_change, tmp_path
):
    result = promptctl("review", "--base", "main", "--head", big_change)
    assert result.exit_code == 0, result.stderr
    markdown = result.stdout
    assert len(markdown) <= MAX_CHARS
    lines = markdown.splitlines()
    assert lines[2] == "**Result:** ✅ passes: no lint errors, no breaking changes."
    note = next(line for line in lines if line.startswith("> ⚠️ Shortened"))
    assert "under 60,000 characters" in note
    assert (
        "For the whole report run `promptctl review --base main --head big --max-chars 0 "
        "-o full.md`." in note
    )
    assert sum(line.startswith("| `bulk/p") for line in lines) == 40  # every summary row
    assert markdown.count("<details>") == markdown.count("</details>")
    code_blocks(markdown)  # every fence closed
    assert "more line(s) left out" in markdown or "more prompt(s) left out" in markdown
    assert lines[-1] == "<sub>Generated by `promptctl review`.</sub>"

    full = tmp_path / "full.md"
    written = promptctl(
        "review", "--base", "main", "--head", big_change, "--max-chars", "0", "-o", str(full)
    )
    assert written.exit_code == 0, written.stderr
    text = full.read_text(encoding="utf-8")
    assert len(text) > MAX_CHARS
    assert "Shortened" not in text
    assert "left out" not in text


def test_a_smaller_cap_is_kept_too(promptctl, big_change):
    markdown = promptctl(
        "review", "--base", "main", "--head", big_change, "--max-chars", "8000"
    ).stdout
    assert len(markdown) <= 8000
    assert "under 8,000 characters" in markdown
    assert markdown.count("<details>") == markdown.count("</details>")
    code_blocks(markdown)


# -- options --------------------------------------------------------------------------


def test_o_writes_the_report_like_output(promptctl, repo, tmp_path):
    branch(repo, "short", {SUMMARIZE: "Summarise briefly:\n{{ article }}\n"})
    target = tmp_path / "review.md"
    result = promptctl("review", "--base", "main", "--head", "short", "-o", str(target))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert target.read_text(encoding="utf-8").startswith("## promptctl review: `main` → `short`")


def test_json_is_the_report_in_the_shared_vocabulary(promptctl, repo):
    branch(repo, "short", {SUMMARIZE: "Summarise briefly:\n{{ article }}\n"})
    as_flag = promptctl("review", "--base", "main", "--head", "short", "--json")
    as_format = promptctl("review", "--base", "main", "--head", "short", "--format", "json")
    assert as_flag.exit_code == 0
    assert json.loads(as_flag.stdout) == json.loads(as_format.stdout)
    [summarize] = json.loads(as_flag.stdout)["prompts"]
    assert summarize["prompt"] == "summarize"
    assert (summarize["old"]["version"], summarize["old"]["label"]) == (1, "v1")
    assert summarize["new"]["version"] is None  # not merged: no number yet
    assert len(summarize["new"]["digest"]) == 64
    assert summarize["samples"] == []  # summarize declares no samples to render


# -- through a server -----------------------------------------------------------------


def test_through_a_server_the_environments_are_the_same_as_with_the_database(
    run, repo, environments, migrated_database_url
):
    """The releases and figures come over HTTP; the verdicts are the same."""
    from click.testing import CliRunner
    from support import serving

    from promptctl.cli.main import cli
    from promptctl.server.app import create_app
    from promptctl.server.settings import ServerSettings

    local = json.loads(run("review", "--base", "main", "--head", environments, "--json").stdout)
    settings = ServerSettings(repo=repo.path, database_url=migrated_database_url)
    with serving(create_app(settings)) as base:
        result = CliRunner().invoke(
            cli,
            [
                "--repo",
                str(repo.path),
                "review",
                "--base",
                "main",
                "--head",
                environments,
                "--json",
            ],
            env={"PROMPTCTL_SERVER": base},
        )
    assert result.exit_code == 0, result.output
    remote = json.loads(result.stdout)
    assert remote["environments"] == local["environments"] == ["staging", "production"]
    assert remote["prompts"][0]["environments"] == local["prompts"][0]["environments"]
