"""Review of a prompt change between two revisions: the report's structure and its Markdown.

Every repository is built with the real `git` command: a `main` with shared partials and a
merged branch, then feature branches that add, remove, rename and change prompts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from promptctl.registry.prompts.library import PromptLibrary
from promptctl.registry.releases.values import ReleaseState, VersionRef
from promptctl.registry.review.markdown import to_markdown
from promptctl.registry.review.releases import Serving
from promptctl.registry.review.report import ReviewReport, review

TONE = "Be kind and precise.\n"
SIGN = "Signed, the support team.\n"

TRIAGE = """\
---
description: Triage a support ticket
model: gpt-4o-mini
input:
  ticket: {type: string}
  tier: {type: string, enum: [free, pro, enterprise], default: free}
output: {format: json}
samples:
  - {ticket: "I was charged twice", tier: pro}
---
{% message "system" %}
You triage tickets for {{ tier }} customers.
{% include "partials/tone.j2" %}
{% endmessage %}
{% message "user" %}{{ ticket }}{% endmessage %}
"""

REFUND = """\
---
description: Draft a refund reply
model: claude-3-haiku
input:
  amount: {type: number}
samples:
  - {amount: 12.5}
---
Draft a refund reply for {{ amount }} dollars.
{% include "partials/tone.j2" %}
{% include "partials/sign.j2" %}
"""

SUMMARIZE = """\
---
description: Summarise an article
model: gpt-4o
input:
  article: {type: string}
  style: {type: string, default: short}
samples:
  - {article: "Cats sleep a lot."}
---
Summarise in a {{ style }} way:
{{ article }}
"""

GREET = """\
---
description: Greet a new user
input:
  name: {type: string}
samples:
  - {name: Ada}
---
Hello {{ name }}, welcome to our product. We are glad you are here.
"""

CLASSIFY = """\
---
description: Classify a customer message by topic
input:
  message: {type: string}
samples:
  - {message: "Where is my parcel?"}
---
Classify the message into one of: billing, shipping, account, other.
Answer with the topic only, in lower case.
Message: {{ message }}
"""

LEGACY = "Say hello the way we did in 2019, with a lot of exclamation marks.\n"

WELCOME = """\
---
description: Onboarding checklist
input:
  plan: {type: string}
samples:
  - {plan: team}
---
List the first three steps for a {{ plan }} plan.
"""


@pytest.fixture
def repo(git_repo):
    """`main`: five prompts and two partials, then a merged branch that adds summarize."""
    git_repo.commit(
        "add the support prompts",
        {
            "prompts/partials/tone.j2": TONE,
            "prompts/partials/sign.j2": SIGN,
            "prompts/support/triage.prompt": TRIAGE,
            "prompts/support/refund.prompt": REFUND,
            "prompts/greet.prompt": GREET,
            "prompts/classify.prompt": CLASSIFY,
            "prompts/legacy.prompt": LEGACY,
        },
    )
    git_repo.git("checkout", "-q", "-b", "add-summarize")
    git_repo.commit("add summarize", {"prompts/summarize.prompt": SUMMARIZE})
    git_repo.git("checkout", "-q", "main")
    git_repo.commit("unrelated readme", {"README.md": "Our prompts.\n"})
    git_repo.git("merge", "-q", "--no-ff", "add-summarize", "-m", "merge add-summarize")
    return git_repo


@pytest.fixture
def library(repo, make_library) -> PromptLibrary:
    return make_library(repo)


def branch(repo, name: str, message: str, files: dict[str, str], start: str = "main") -> None:
    """Create branch `name` from `start` with one commit writing `files`, then go back."""
    repo.git("checkout", "-q", "-b", name, start)
    repo.commit(message, files)
    repo.git("checkout", "-q", "main")


def serving(
    name: str,
    environment: str,
    stable: Any,
    canary: Any = None,
    weight_bp: int = 0,
    metrics: dict[str, Any] | None = None,
) -> Serving:
    """What a release lookup answers: `stable`/`canary` are versions (content known) or
    digests (content unread)."""

    def ref(version: Any) -> VersionRef:
        if isinstance(version, str):
            return VersionRef(version, None)
        return VersionRef(version.digest, version.number)

    state = ReleaseState(
        name,
        environment,
        ref(stable),
        ref(canary) if canary is not None else None,
        weight_bp,
        1,
        datetime(2025, 1, 1, tzinfo=UTC),
        "tester",
    )
    row = Serving(state, metrics=metrics)
    for variant, version in (("stable", stable), ("canary", canary)):
        if version is None:
            continue
        described = f"{ref(version).label} ({variant})"
        if isinstance(version, str):
            row.unread.append(described)
        else:
            row.versions.append((described, version))
    return row


def by_name(report: ReviewReport) -> dict[str, dict[str, Any]]:
    return {p["prompt"]: p for p in report.to_json()["prompts"]}


@pytest.fixture
def feature(repo) -> str:
    """A branch that edits a shared partial, adds, removes and renames prompts."""
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit("brief tone", {"prompts/partials/tone.j2": "Be brief.\n"})
    repo.commit("add welcome", {"prompts/welcome.prompt": WELCOME})
    repo.git("rm", "-q", "prompts/legacy.prompt")
    repo.git("mv", "prompts/greet.prompt", "prompts/hello.prompt")
    repo.git("mv", "prompts/classify.prompt", "prompts/support/classify.prompt")
    repo.commit("remove legacy, move greet and classify")
    repo.commit(
        "classify spam too",
        {"prompts/support/classify.prompt": CLASSIFY.replace("other.", "spam, other.")},
    )
    repo.git("checkout", "-q", "main")
    return "feature"


# -- structure of the report ----------------------------------------------------------


def test_summary_counts_every_kind_of_change_on_a_feature_branch(library, feature):
    data = review(library, "main", feature).to_json()
    assert data["summary"] == {
        "added": 1,
        "removed": 1,
        "renamed": 2,
        "changed": 2,
        "unchanged": 1,
        "lint_errors": 0,
        "breaking": 0,
    }
    assert data["base"]["ref"] == "main"
    assert data["head"]["ref"] == "feature"
    assert data["base"]["commit"] == library.store.resolve("main")
    assert data["head"]["commit"] == library.store.resolve("feature")
    assert data["base_is_ancestor"] is True
    assert data["notes"] == []


def test_each_prompt_is_reported_under_its_change_kind(library, feature):
    prompts = by_name(review(library, "main", feature))
    kinds = {name: (p["change"], p["renamed_from"]) for name, p in prompts.items()}
    assert kinds == {
        "hello": ("renamed", "greet"),
        "legacy": ("removed", None),
        "support/classify": ("renamed", "classify"),
        "support/refund": ("changed", None),
        "support/triage": ("changed", None),
        "welcome": ("added", None),
    }
    assert prompts["welcome"]["old"] is None
    assert prompts["welcome"]["new"]["path"] == "prompts/welcome.prompt"
    assert prompts["legacy"]["new"] is None
    assert prompts["legacy"]["old"]["path"] == "prompts/legacy.prompt"


def test_a_partial_change_reports_every_prompt_that_includes_it_via_partials(library, feature):
    prompts = by_name(review(library, "main", feature))
    for name in ("support/triage", "support/refund"):
        entry = prompts[name]
        assert entry["via_partials"] == ["partials/tone.j2"], name
        assert entry["body_diff"] == ""
        assert "-Be kind and precise.\n+Be brief.\n" in entry["partial_diffs"]["partials/tone.j2"]
    # refund also includes sign.j2, which did not change: it is not named.
    assert list(prompts["support/refund"]["partial_diffs"]) == ["partials/tone.j2"]


def test_a_pure_git_mv_is_reported_as_a_rename_with_the_same_digest(library, feature):
    hello = by_name(review(library, "main", feature))["hello"]
    assert hello["old"]["path"] == "prompts/greet.prompt"
    assert hello["new"]["path"] == "prompts/hello.prompt"
    assert hello["old"]["digest"] == hello["new"]["digest"]
    assert hello["body_diff"] == ""
    assert [(s["index"], s["changed"], s["diff"]) for s in hello["samples"]] == [(1, False, "")]
    assert hello["breaking"] == []


def test_a_rename_with_a_small_edit_is_paired_and_shows_the_edited_line(library, feature):
    classify = by_name(review(library, "main", feature))["support/classify"]
    assert classify["old"]["path"] == "prompts/classify.prompt"
    assert classify["old"]["digest"] != classify["new"]["digest"]
    assert (
        "+Classify the message into one of: billing, shipping, account, spam, other.\n"
        in (classify["body_diff"])
    )
    assert (
        "-Classify the message into one of: billing, shipping, account, other.\n"
        in (classify["body_diff"])
    )


def test_an_added_prompt_counts_tokens_after_only_and_is_linted(library, feature):
    welcome = by_name(review(library, "main", feature))["welcome"]
    assert welcome["tokens"]["before"] is None
    assert isinstance(welcome["tokens"]["after"], int)
    assert welcome["tokens"]["after"] > 0
    assert welcome["variables"]["added"] == ["plan"]
    assert "+List the first three steps for a {{ plan }} plan.\n" in welcome["body_diff"]
    assert welcome["lint"] == []


def test_a_removed_prompt_that_is_not_released_is_not_breaking(library, feature):
    legacy = by_name(review(library, "main", feature))["legacy"]
    assert legacy["tokens"]["after"] is None
    assert isinstance(legacy["tokens"]["before"], int)
    assert legacy["breaking"] == []
    assert legacy["environments"] is None


def test_tokens_are_integers_counted_with_a_named_tokenizer(library, feature):
    prompts = by_name(review(library, "main", feature))
    triage = prompts["support/triage"]["tokens"]
    assert isinstance(triage["before"], int)
    assert isinstance(triage["after"], int)
    assert triage["after"] < triage["before"]  # "Be brief." is shorter
    assert triage["tokenizer"] == "o200k_base"
    refund = prompts["support/refund"]["tokens"]
    assert refund["tokenizer"] == "o200k_base (estimate for claude-3-haiku)"


def test_samples_show_the_rendering_before_and_after_when_it_changed(library, feature):
    triage = by_name(review(library, "main", feature))["support/triage"]
    [sample] = triage["samples"]
    assert sample["index"] == 1
    assert sample["variables"] == {"ticket": "I was charged twice", "tier": "pro"}
    assert "Be kind and precise." in sample["before"]
    assert "Be brief." in sample["after"]
    assert sample["before"].startswith("[system]\nYou triage tickets for pro customers.")


def test_a_partial_included_through_another_partial_is_followed(make_git_repo, make_library):
    nested = make_git_repo("nested")
    nested.commit(
        "nested partials",
        {
            "prompts/partials/inner.j2": "Inner rule.\n",
            "prompts/partials/outer.j2": '{% include "partials/inner.j2" %}\nOuter rule.\n',
            "prompts/direct.prompt": 'Direct.\n{% include "partials/inner.j2" %}\n',
            "prompts/indirect.prompt": 'Indirect.\n{% include "partials/outer.j2" %}\n',
            "prompts/alone.prompt": "No partials here.\n",
        },
    )
    nested.commit("new inner rule", {"prompts/partials/inner.j2": "Inner rule, revised.\n"})
    report = review(make_library(nested), "HEAD~1", "HEAD")
    prompts = by_name(report)
    assert sorted(prompts) == ["direct", "indirect"]
    assert prompts["indirect"]["via_partials"] == ["partials/inner.j2"]
    assert prompts["direct"]["via_partials"] == ["partials/inner.j2"]
    assert report.unchanged == 1
    assert "+Inner rule, revised.\n" in prompts["indirect"]["partial_diffs"]["partials/inner.j2"]
    assert prompts["indirect"]["samples"] == []  # it has no samples to render


def test_a_change_that_does_not_alter_the_rendering_has_no_samples(repo, library):
    branch(
        repo,
        "reword",
        "reword the description",
        {"prompts/support/refund.prompt": REFUND.replace("Draft a refund reply\n", "Refunds\n")},
    )
    refund = by_name(review(library, "main", "reword"))["support/refund"]
    assert refund["change"] == "changed"
    assert refund["front_matter"] == [
        {
            "key": "description",
            "change": "changed",
            "old": "Draft a refund reply",
            "new": "Refunds",
            "old_yaml": "description: Draft a refund reply\n",
            "new_yaml": "description: Refunds\n",
            "diff": "-description: Draft a refund reply\n+description: Refunds\n",
        }
    ]
    assert [s["changed"] for s in refund["samples"]] == [False]
    assert refund["body_diff"] == ""
    assert refund["via_partials"] == []
    assert refund["tokens"]["before"] == refund["tokens"]["after"]


def test_a_merge_commit_reviewed_against_its_first_parent_shows_what_the_branch_brought(
    library,
):
    data = review(library, "main^1", "main").to_json()
    assert [(p["prompt"], p["change"]) for p in data["prompts"]] == [("summarize", "added")]
    assert data["summary"]["unchanged"] == 5


def test_the_same_revision_on_both_sides_reports_no_change(library):
    report = review(library, "main", "main")
    assert report.prompts == []
    assert report.unchanged == 6
    assert report.exit_code(allow_breaking=False) == 0
    assert "No prompt changes (6 prompt(s) unchanged)." in to_markdown(report)


# -- breaking changes -----------------------------------------------------------------


@pytest.fixture
def breaking(repo) -> str:
    """triage: a new required variable, a narrowed enum, another output; summarize loses a
    variable (which breaks nobody: it is not strict)."""
    triage = (
        TRIAGE.replace(
            "  tier: {type: string, enum: [free, pro, enterprise], default: free}\n",
            "  tier: {type: string, enum: [pro, enterprise], default: pro}\n"
            "  language: {type: string}\n",
        )
        .replace("output: {format: json}", "output: {format: text}")
        .replace(
            '{ticket: "I was charged twice", tier: pro}',
            '{ticket: "I was charged twice", tier: pro, language: fr}',
        )
        .replace("customers.\n", "customers, in {{ language }}.\n")
    )
    summarize = SUMMARIZE.replace("  style: {type: string, default: short}\n", "").replace(
        "in a {{ style }} way", "in one line"
    )
    branch(
        repo,
        "breaking",
        "stricter triage, simpler summarize",
        {"prompts/support/triage.prompt": triage, "prompts/summarize.prompt": summarize},
    )
    return "breaking"


def test_breaking_changes_are_named_for_each_prompt(library, breaking):
    report = review(library, "main", breaking)
    prompts = by_name(report)
    assert prompts["support/triage"]["breaking"] == [
        "new required variable 'language' without a default: callers do not send it yet",
        "variable 'tier' no longer accepts free",
        "the output format or schema changed: parsers of its answers may break",
    ]
    # A tolerant prompt ignores a variable it no longer declares: callers still passing
    # 'style' get their summary, so losing it breaks nobody (a strict prompt would refuse).
    assert prompts["summarize"]["breaking"] == []
    assert report.to_json()["summary"]["breaking"] == 3
    assert report.exit_code(allow_breaking=False) == 1
    assert report.exit_code(allow_breaking=True) == 0


def test_breaking_changes_show_in_front_matter_and_variables(library, breaking):
    prompts = by_name(review(library, "main", breaking))
    triage = prompts["support/triage"]
    assert triage["variables"] == {"added": ["language"], "removed": [], "changed": ["tier"]}
    changed_keys = [c["key"] for c in triage["front_matter"]]
    assert changed_keys == ["input", "output", "samples"]
    output = next(c for c in triage["front_matter"] if c["key"] == "output")
    assert (output["old"], output["new"]) == ({"format": "json"}, {"format": "text"})
    assert (
        "+You triage tickets for {{ tier }} customers, in {{ language }}.\n"
        in (triage["body_diff"])
    )
    summarize = prompts["summarize"]
    assert summarize["variables"] == {"added": [], "removed": ["style"], "changed": []}


def test_the_sample_renders_the_base_without_variables_it_did_not_declare(library, breaking):
    triage = by_name(review(library, "main", breaking))["support/triage"]
    [sample] = triage["samples"]
    assert "for pro customers.\n" in sample["before"]
    assert "for pro customers, in fr.\n" in sample["after"]
    assert "does not render" not in sample["before"]


def test_a_switch_from_text_to_chat_is_breaking(repo, library):
    chat = SUMMARIZE.replace(
        "Summarise in a {{ style }} way:\n{{ article }}\n",
        '{% message "user" %}Summarise in a {{ style }} way:\n{{ article }}{% endmessage %}\n',
    )
    branch(repo, "chat", "summarize as chat", {"prompts/summarize.prompt": chat})
    summarize = by_name(review(library, "main", "chat"))["summarize"]
    assert summarize["breaking"] == ["the prompt now renders to messages"]


def test_a_variable_that_loses_its_default_or_changes_type_is_breaking(repo, library):
    triage = TRIAGE.replace(
        "tier: {type: string, enum: [free, pro, enterprise], default: free}",
        "tier: {type: string, enum: [free, pro, enterprise]}",
    )
    refund = REFUND.replace("amount: {type: number}", "amount: {type: string}").replace(
        "{amount: 12.5}", '{amount: "12.50"}'
    )
    branch(
        repo,
        "stricter",
        "stricter inputs",
        {"prompts/support/triage.prompt": triage, "prompts/support/refund.prompt": refund},
    )
    prompts = by_name(review(library, "main", "stricter"))
    assert prompts["support/triage"]["breaking"] == ["variable 'tier' became required"]
    assert prompts["support/refund"]["breaking"] == [
        "variable 'amount' changed type from number to string"
    ]


def test_an_optional_new_variable_is_not_breaking(repo, library):
    triage = TRIAGE.replace(
        "output: {format: json}",
        "  product: {type: string, default: Acme}\noutput: {format: json}",
    ).replace("customers.\n", "customers of {{ product }}.\n")
    branch(repo, "optional", "name the product", {"prompts/support/triage.prompt": triage})
    entry = by_name(review(library, "main", "optional"))["support/triage"]
    assert entry["variables"]["added"] == ["product"]
    assert entry["breaking"] == []
    assert entry["lint"] == []


def test_a_removed_prompt_released_somewhere_is_breaking(library, feature):
    def releases(name: str) -> list[Serving] | None:
        if name == "legacy":
            return [serving("legacy", "production", "ab" * 32)]
        return []

    report = review(library, "main", feature, releases)
    prompts = by_name(report)
    assert prompts["legacy"]["breaking"] == ["'legacy' is removed but released in production"]
    [production] = prompts["legacy"]["environments"]
    assert production["environment"] == "production"
    assert production["compatible"] is False
    assert production["breaking"] == ["'legacy' is removed but released here"]
    assert prompts["welcome"]["environments"] == []
    assert report.breaking == [("legacy", "'legacy' is removed but released in production")]


def test_a_renamed_prompt_is_looked_up_under_its_old_name(library, feature):
    asked: list[str] = []

    def releases(name: str) -> list[Serving]:
        asked.append(name)
        return [serving("greet", "staging", "cd" * 32)] if name == "greet" else []

    hello = by_name(review(library, "main", feature, releases))["hello"]
    assert "greet" in asked
    assert "hello" not in asked
    assert hello["breaking"] == ["'greet' is renamed to 'hello' but released in staging"]


# -- lint and unreadable files --------------------------------------------------------


def test_a_broken_head_version_carries_its_lint_findings(repo, library):
    broken = TRIAGE.replace(
        "{{ ticket }}{% endmessage %}", "{{ ticket }} from {{ customer }}{% endmessage %}"
    )
    branch(repo, "broken", "mention the customer", {"prompts/support/triage.prompt": broken})
    report = review(library, "main", "broken")
    triage = by_name(report)["support/triage"]
    codes = [(f["severity"], f["code"]) for f in triage["lint"]]
    assert ("error", "undeclared-variable") in codes
    finding = next(f for f in triage["lint"] if f["code"] == "undeclared-variable")
    assert "customer" in finding["message"]
    assert finding["path"] == "prompts/support/triage.prompt"
    assert report.to_json()["summary"]["lint_errors"] == 1
    assert report.exit_code(allow_breaking=True) == 1


def test_a_prompt_that_does_not_load_at_head_is_reported_with_its_error(repo, library):
    branch(
        repo,
        "bad-yaml",
        "break the front matter",
        {"prompts/greet.prompt": "---\ndescription: [unclosed\n---\nHello\n"},
    )
    report = review(library, "main", "bad-yaml")
    greet = by_name(report)["greet"]
    assert greet["change"] == "changed"
    assert greet["error"].startswith("prompts/greet.prompt")
    assert greet["new"] is None
    assert report.lint_errors == 1
    assert "❌ does not load" in to_markdown(report)


def test_an_undecodable_prompt_file_is_an_error_for_that_prompt_only(repo, library):
    repo.git("checkout", "-q", "-b", "latin1")
    (repo.path / "prompts" / "cafe.prompt").write_bytes("Caf\xe9 au lait.\n".encode("latin-1"))
    (repo.path / "prompts" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    repo.commit("a latin-1 prompt and an image")
    repo.git("checkout", "-q", "main")
    report = review(library, "main", "latin1")
    assert [(p.name, p.change) for p in report.prompts] == [("cafe", "added")]
    cafe = report.prompts[0]
    assert cafe.error == "prompts/cafe.prompt:1: not valid UTF-8 text"
    assert report.unchanged == 6


def test_a_binary_partial_is_an_error_for_every_prompt_that_includes_it(repo, library):
    repo.git("checkout", "-q", "-b", "binary-tone")
    (repo.path / "prompts" / "partials" / "tone.j2").write_bytes(b"Be\x00kind\n")
    repo.commit("binary tone")
    repo.git("checkout", "-q", "main")
    prompts = by_name(review(library, "main", "binary-tone"))
    assert sorted(prompts) == ["support/refund", "support/triage"]
    for entry in prompts.values():
        assert "binary file" in entry["error"]


# -- unrelated histories and empty libraries ------------------------------------------


def test_a_base_that_is_not_an_ancestor_still_compares_the_trees_and_says_so(repo, library):
    branch(repo, "left", "left", {"prompts/legacy.prompt": "Left.\n"})
    branch(repo, "right", "right", {"prompts/welcome.prompt": WELCOME})
    report = review(library, "left", "right")
    assert report.base_is_ancestor is False
    assert [(p.name, p.change) for p in report.prompts] == [
        ("legacy", "changed"),
        ("welcome", "added"),
    ]
    [note] = report.notes
    assert note.startswith("left is not an ancestor of right")
    assert f"> {note}" in to_markdown(report)


def test_a_repository_without_prompts_reports_nothing_and_says_where_it_looked(
    make_git_repo, make_library
):
    empty = make_git_repo("empty")
    empty.commit("readme", {"README.md": "hi\n"})
    empty.commit("more readme", {"README.md": "hello\n"})
    report = review(make_library(empty), "HEAD~1", "HEAD")
    assert report.prompts == []
    assert report.notes == ["no prompts under 'prompts' in HEAD~1 or HEAD"]
    markdown = to_markdown(report)
    assert "No prompt changes (0 prompt(s) unchanged)." in markdown
    assert "> no prompts under 'prompts' in HEAD~1 or HEAD" in markdown


# -- Markdown -------------------------------------------------------------------------


def test_markdown_starts_with_the_result_and_a_summary_table_with_one_row_per_prompt(
    library, feature
):
    report = review(library, "main", feature)
    lines = to_markdown(report).splitlines()
    assert lines[0] == "## promptctl review: `main` → `feature`"
    assert lines[2] == "**Result:** ✅ passes: no lint errors, no breaking changes."
    header = lines.index(
        "| Prompt | Change | Version | Breaking | Lint | Input tokens | Cost / 1k calls |"
    )
    assert lines[header + 1] == "| --- | --- | --- | --- | --- | --- | --- |"
    rows = lines[header + 2 : header + 8]
    assert [r.split(" | ")[0] for r in rows] == [
        "| `hello`",
        "| `legacy`",
        "| `support/classify`",
        "| `support/refund`",
        "| `support/triage`",
        "| `welcome`",
    ]
    assert rows[0].startswith("| `hello` | renamed from `greet` | ")
    assert rows[1].startswith("| `legacy` | removed | `v1` → — | — |")
    assert rows[3].startswith("| `support/refund` | changed via `partials/tone.j2` | `v1` → ")
    assert rows[5].startswith("| `welcome` | added | — → ")
    assert lines[header + 8] == ""
    assert lines[header + 9] == "1 other prompt(s) unchanged."
    assert lines.index("### `hello` — renamed (was `greet`)") > header


def test_markdown_has_a_section_per_prompt_with_samples_as_diffs(library, feature):
    markdown = to_markdown(review(library, "main", feature))
    assert "### `support/triage` — changed" in markdown
    assert "### `hello` — renamed (was `greet`)" in markdown
    assert "**Partial `partials/tone.j2`**" in markdown
    sample = (
        '**Sample 1 rendered (`{"ticket": "I was charged twice", "tier": "pro"}`)**\n\n'
        "```diff\n"
        "--- sample 1 @ v1\n"
        "+++ sample 1 @ "
    )
    assert sample in markdown
    assert "-Be kind and precise.\n+Be brief.\n" in markdown
    # A rename that renders the same says so in one line.
    assert "Sample 1 renders the same before and after." in markdown
    assert markdown.count("</details>") == markdown.count("<details>")
    assert (
        "**Tokens and cost** (model `claude-3-haiku`; counted with o200k_base (estimate for "
        "claude-3-haiku))" in markdown
    )
    assert markdown.rstrip().endswith("<sub>Generated by `promptctl review`.</sub>")


def test_markdown_folds_a_long_body_diff_and_shows_a_short_one_inline(repo, library, feature):
    long_body = GREET + "".join(f"Line {n} of the new welcome text.\n" for n in range(20))
    branch(repo, "long", "long greeting", {"prompts/greet.prompt": long_body})
    folded = to_markdown(review(library, "main", "long"))
    assert "<details><summary>Body diff (" in folded
    assert "+Line 19 of the new welcome text." in folded
    assert "**Body diff**" not in folded
    inline = to_markdown(review(library, "main", feature))
    assert "**Body diff**\n\n```diff\n--- support/classify@v1\n" in inline


def test_markdown_names_breaking_changes_and_fails_the_result_line(library, breaking):
    markdown = to_markdown(review(library, "main", breaking))
    lines = markdown.splitlines()
    assert lines[2] == "**Result:** ❌ fails: 3 breaking change(s) (accept with --allow-breaking)."
    assert "- ⚠️ variable 'tier' no longer accepts free" in lines
    assert "**Variables:** added `language`; changed `tier`" in lines
    row = next(line for line in lines if line.startswith("| `support/triage` |"))
    assert "| ⚠️ 3 | ✅ |" in row
    assert "- `output`: `{format: json}` → `{format: text}`" in lines


def test_markdown_shows_what_runs_today_when_releases_are_known(library, feature):
    v1 = library.get("support/triage", "v1")

    def releases(name: str) -> list[Serving]:
        if name == "support/triage":
            metrics = {"count": 120, "error_rate": 0.025, "latency_p95_ms": 812.0}
            return [serving(name, "staging", v1, metrics=metrics)]
        return []

    markdown = to_markdown(review(library, "main", feature, releases))
    lines = markdown.splitlines()
    assert "**Running today**" in lines
    assert "| staging | `v1` | — | ✅ | 120 | 2.5% | 812 ms | — | — |" in lines
    assert "**Running today:** released nowhere yet." in lines


def test_markdown_without_release_information_has_no_release_section(library, feature):
    markdown = to_markdown(review(library, "main", feature))
    assert "Running today" not in markdown
    assert "released nowhere" not in markdown
