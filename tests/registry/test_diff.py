"""Semantic diffs between two versions of a prompt."""

from __future__ import annotations

import pytest

from promptctl.registry.prompts.diff import diff_versions, unified

OLD = """\
---
description: Triage tickets
model: gpt-4o-mini
input:
  ticket: string
  tier: {type: string, enum: [free, pro]}
owner: support
---
Triage: {{ ticket }} ({{ tier }})
{% include "partials/tone.j2" %}
"""

NEW = """\
---
description: Triage tickets
model: gpt-4o
input:
  ticket: string
  tier: {type: string, enum: [free, pro, enterprise]}
  locale: {type: string, default: en}
---
Triage in {{ locale }}: {{ ticket }} ({{ tier }})
{% include "partials/tone.j2" %}
"""


@pytest.fixture
def library(git_repo, make_library):
    git_repo.commit("old", {"prompts/t.prompt": OLD, "prompts/partials/tone.j2": "Be kind.\n"})
    git_repo.commit("new", {"prompts/t.prompt": NEW, "prompts/partials/tone.j2": "Be brief.\n"})
    return make_library(git_repo)


def test_front_matter_changes_list_each_key_with_old_and_new_values(library):
    result = diff_versions("t", library.get("t", "v1"), library.get("t", "v2"))
    changes = {c.key: (c.old, c.new) for c in result.front_matter}
    assert changes["model"] == ("gpt-4o-mini", "gpt-4o")
    assert changes["owner"] == ("support", None)
    assert "description" not in changes
    assert [c.key for c in result.front_matter] == ["model", "input", "owner"]


def test_variables_added_removed_and_changed_are_named(library):
    result = diff_versions("t", library.get("t", "v1"), library.get("t", "v2"))
    assert result.variables_added == ["locale"]
    assert result.variables_removed == []
    assert result.variables_changed == ["tier"]
    back = diff_versions("t", library.get("t", "v2"), library.get("t", "v1"))
    assert back.variables_removed == ["locale"]


def test_body_and_partial_changes_are_unified_diffs_labelled_by_version(library):
    result = diff_versions("t", library.get("t", "v1"), library.get("t", "v2"))
    assert result.body.startswith("--- t@v1\n+++ t@v2\n")
    assert "-Triage: {{ ticket }} ({{ tier }})\n" in result.body
    assert "+Triage in {{ locale }}: {{ ticket }} ({{ tier }})\n" in result.body
    assert list(result.partials) == ["partials/tone.j2"]
    assert "-Be kind.\n+Be brief.\n" in result.partials["partials/tone.j2"]
    assert not result.unchanged


def test_the_same_version_on_both_sides_is_unchanged(library):
    result = diff_versions("t", library.get("t", "v2"), library.get("t", "HEAD"))
    assert result.unchanged
    assert result.front_matter == []
    assert result.body == ""
    assert result.partials == {}


def test_an_added_prompt_diffs_against_nothing(library):
    result = diff_versions("t", None, library.get("t", "v1"))
    assert result.variables_added == ["ticket", "tier"]
    assert result.body.startswith("--- /dev/null\n+++ t@v1\n")
    data = result.to_json()
    assert data["old"] is None
    assert data["new"]["label"] == "v1"
    assert data["unchanged"] is False


def test_a_removed_prompt_diffs_to_nothing(library):
    result = diff_versions("t", library.get("t", "v2"), None)
    assert result.variables_removed == ["locale", "ticket", "tier"]
    assert "+++ /dev/null" in result.body


def test_the_json_form_carries_every_part(library):
    data = diff_versions("t", library.get("t", "v1"), library.get("t", "v2")).to_json()
    assert data["prompt"] == "t"
    assert data["old"]["digest"] == library.get("t", "v1").digest
    assert data["variables"] == {"added": ["locale"], "removed": [], "changed": ["tier"]}
    assert {"key": "model", "old": "gpt-4o-mini", "new": "gpt-4o"} in data["front_matter"]
    assert set(data["partials"]) == {"partials/tone.j2"}


def test_unified_of_equal_texts_is_empty_and_a_missing_final_newline_is_closed():
    assert unified("a\n", "a\n", "x", "y") == ""
    assert unified("a", "b", "x", "y").endswith("+b\n")
