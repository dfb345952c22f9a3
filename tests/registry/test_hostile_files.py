"""Hostile prompt files: YAML bombs, deep nesting and huge files are refused, named and fast."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import promptctl_command

from promptctl.registry.errors import InvalidPromptFile
from promptctl.registry.prompts.promptfile import (
    MAX_FRONT_MATTER_CHARS,
    MAX_FRONT_MATTER_DEPTH,
    MAX_PARTIAL_BYTES,
    MAX_PROMPT_FILE_BYTES,
    parse_prompt_file,
)

PATH = "prompts/bomb.prompt"
# Nine levels of nine aliases each: 9**9 strings once expanded, from about 370 bytes.
ALIAS_BOMB = (
    "---\n"
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{b}: &{b} [{','.join([f'*{a}'] * 9)}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "---\nHello.\n"
)


def test_an_alias_bomb_is_refused_at_its_first_anchor():
    assert len(ALIAS_BOMB) < 400
    with pytest.raises(InvalidPromptFile) as caught:
        parse_prompt_file(PATH, ALIAS_BOMB)
    assert str(caught.value) == f"{PATH}:2: bad YAML in front matter: anchors (&a) are not allowed"


def test_an_alias_alone_is_refused_with_its_line():
    text = "---\nmodel: gpt-4o\nparams: *shared\n---\nHello.\n"
    with pytest.raises(InvalidPromptFile) as caught:
        parse_prompt_file(PATH, text)
    assert caught.value.line == 3
    assert "aliases (*shared) are not allowed" in str(caught.value)


def test_nesting_past_the_limit_is_refused():
    deep = "[" * (MAX_FRONT_MATTER_DEPTH + 5) + "]" * (MAX_FRONT_MATTER_DEPTH + 5)
    with pytest.raises(InvalidPromptFile, match=f"nested deeper than {MAX_FRONT_MATTER_DEPTH}"):
        parse_prompt_file(PATH, f"---\nx: {deep}\n---\nHello.\n")


def test_ordinary_nesting_still_parses():
    prompt = parse_prompt_file(PATH, "---\nparams: {a: {b: [1, [2, {c: 3}]]}}\n---\nHello.\n")
    assert prompt.front_matter["params"] == {"a": {"b": [1, [2, {"c": 3}]]}}


def test_front_matter_over_its_limit_is_refused():
    text = "---\ndescription: " + "x" * MAX_FRONT_MATTER_CHARS + "\n---\nHello.\n"
    with pytest.raises(InvalidPromptFile, match="front matter of .* over the limit"):
        parse_prompt_file(PATH, text)


def test_a_file_over_the_prompt_size_limit_is_refused():
    with pytest.raises(InvalidPromptFile) as caught:
        parse_prompt_file(PATH, b"x" * (MAX_PROMPT_FILE_BYTES + 1))
    assert "over the limit of 262,144 bytes for a prompt" in str(caught.value)


_SCALAR = st.sampled_from(["1", "x", '"s"', "null", "true"])


def _yaml(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(children, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(children, max_size=4).map(
            lambda xs: "{" + ", ".join(f"k{i}: {x}" for i, x in enumerate(xs)) + "}"
        ),
        children.map(lambda x: f"&n {x}"),
        st.just("*n"),
    )


@settings(max_examples=200, deadline=None)
@given(st.recursive(_SCALAR, _yaml, max_leaves=60))
def test_any_front_matter_parses_or_is_refused_cleanly(value):
    try:
        parse_prompt_file(PATH, f"---\nx: {value}\n---\nHello.\n")
    except InvalidPromptFile as exc:
        assert exc.path == PATH  # noqa: PT017 - the error must name the file


def test_lint_names_the_bomb_and_ends(git_repo):
    git_repo.commit("bomb", {"prompts/bomb.prompt": ALIAS_BOMB, "prompts/ok.prompt": "Hi.\n"})
    command = promptctl_command()
    # The timeout only guards the suite against a hang; no duration is asserted.
    result = subprocess.run(
        [*command, "--repo", str(git_repo.path), "lint"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "prompts/bomb.prompt:2" in result.stdout
    assert "anchors (&a) are not allowed" in result.stdout


def test_a_partial_over_its_limit_is_refused_naming_the_partial(git_repo, make_library):
    big = "x" * (MAX_PARTIAL_BYTES + 1)
    git_repo.commit(
        "big partial",
        {"prompts/p.prompt": '{% include "partials/big.j2" %}\n', "prompts/partials/big.j2": big},
    )
    with pytest.raises(InvalidPromptFile) as caught:
        make_library(git_repo).get("p", "HEAD")
    assert caught.value.path == "prompts/partials/big.j2"
    assert "over the limit of 262,144 bytes for a partial" in str(caught.value)


def test_a_version_over_its_total_limit_is_refused(git_repo, make_library):
    parts = {f"prompts/partials/p{i}.j2": "y" * 250_000 for i in range(5)}
    body = "".join(f'{{% include "partials/p{i}.j2" %}}\n' for i in range(5))
    git_repo.commit("many partials", {"prompts/p.prompt": body, **parts})
    with pytest.raises(InvalidPromptFile, match="with its partials the prompt is 1,250"):
        make_library(git_repo).get("p", "HEAD")


def test_promote_refuses_a_prompt_over_the_size_limit(git_repo, tmp_path):
    git_repo.commit("huge", {"prompts/huge.prompt": "z" * (MAX_PROMPT_FILE_BYTES + 10)})
    command = promptctl_command()
    result = subprocess.run(
        [*command, "--repo", str(git_repo.path), "--database-url",
         f"sqlite:///{tmp_path / 'r.db'}", "promote", "huge", "--env", "staging"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "over the limit of 262,144 bytes for a prompt" in result.stderr
