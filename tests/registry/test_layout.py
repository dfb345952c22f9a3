"""Layout: where prompts live, from promptctl.toml, environment variables and options."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptctl.registry.errors import ConfigError
from promptctl.registry.prompts.layout import NAME_RE, Layout, check_name, load_layout

SYSTEM_MD = """\
---
description: {name} assistant
input:
  question: string
samples:
  - {{question: "why?"}}
---
{{% message "system" %}}You are the {name} assistant.{{% endmessage %}}
{{% message "user" %}}{{{{ question }}}}{{% endmessage %}}
"""


def test_defaults_are_prompts_folder_dot_prompt_files_and_main(tmp_path):
    layout = load_layout(tmp_path)
    assert layout == Layout(
        root="prompts", pattern="{name}.prompt", branch="main", branch_guessed=True
    )
    assert layout.name_of("support/triage.prompt") == "support/triage"
    assert layout.name_of("partials/tone.j2") is None
    assert layout.name_of("Upper.prompt") == "Upper"  # capitals allowed, case kept
    assert layout.name_of("a b.prompt") is None
    assert "(' ')" in layout.skip_reason("a b.prompt")
    assert layout.repo_path(layout.relpath_of("support/triage")) == "prompts/support/triage.prompt"


def test_promptctl_toml_sets_root_pattern_and_branch(tmp_path):
    (tmp_path / "promptctl.toml").write_text(
        'root = "llm/prompts"\npattern = "{name}/system.md"\nbranch = "trunk"\n'
    )
    layout = load_layout(tmp_path)
    assert layout.root == "llm/prompts"
    assert layout.pattern == "{name}/system.md"
    assert layout.branch == "trunk"
    assert layout.name_of("billing/refund/system.md") == "billing/refund"
    assert layout.name_of("billing/refund/user.md") is None


def test_a_promptctl_table_is_read_as_well(tmp_path):
    (tmp_path / "promptctl.toml").write_text('[promptctl]\nroot = "p"\n')
    assert load_layout(tmp_path).root == "p"


@pytest.mark.parametrize(("root", "expected"), [("", ""), (".", ""), ("/prompts/", "prompts")])
def test_the_root_is_normalised_and_may_be_the_repository_top(root, expected):
    layout = Layout(root=root)
    assert layout.root == expected
    assert layout.repo_path("a.prompt") == (f"{expected}/a.prompt" if expected else "a.prompt")


def test_environment_variables_override_the_file_and_options_override_both(
    tmp_path, monkeypatch
):
    (tmp_path / "promptctl.toml").write_text('root = "file"\npattern = "{name}.txt"\n')
    monkeypatch.setenv("PROMPTCTL_ROOT", "env")
    monkeypatch.setenv("PROMPTCTL_BRANCH", "env-branch")
    layout = load_layout(tmp_path)
    assert (layout.root, layout.pattern, layout.branch) == ("env", "{name}.txt", "env-branch")
    layout = load_layout(tmp_path, root="option", branch="option-branch")
    assert (layout.root, layout.pattern, layout.branch) == ("option", "{name}.txt", "option-branch")
    monkeypatch.setenv("PROMPTCTL_PATTERN", "{name}.j2")
    assert load_layout(tmp_path).pattern == "{name}.j2"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('root = "unclosed', "promptctl.toml: "),
        (
            'root = "p"\nprompts = "x"\n',
            "unknown key(s) prompts (known: root, pattern, branch, template)",
        ),
        ('root = ""\n', "'root' must be a non-empty string"),
        ("branch = 3\n", "'branch' must be a non-empty string"),
        ("promptctl = 3\n", "[promptctl] must be a table"),
        ('pattern = "system.md"\n', "must contain '{name}' exactly once"),
        ('pattern = "{name}/{name}.md"\n', "must contain '{name}' exactly once"),
        ('pattern = "/abs/{name}.md"\n', "must be a relative path"),
        ('pattern = "../{name}.md"\n', "must be a relative path"),
        ('root = "../outside"\n', "must stay inside the repository"),
    ],
)
def test_a_bad_config_is_a_config_error_saying_what_is_wrong(tmp_path, config, message):
    (tmp_path / "promptctl.toml").write_text(config)
    with pytest.raises(ConfigError) as caught:
        load_layout(tmp_path)
    assert message in str(caught.value)


def test_a_library_refuses_to_open_with_a_bad_config(git_repo, make_library):
    git_repo.write("promptctl.toml", 'pattern = "no-placeholder"\n')
    with pytest.raises(ConfigError, match="pattern 'no-placeholder'"):
        make_library(git_repo)


def test_a_repository_with_one_folder_per_prompt_is_adopted_by_its_config(git_repo, make_library):
    git_repo.commit("layout", {
        "promptctl.toml": 'root = "assistants"\npattern = "{name}/system.md"\n',
        "assistants/billing/system.md": SYSTEM_MD.format(name="billing"),
        "assistants/billing/notes.md": "not a prompt",
        "assistants/shipping/eu/system.md": SYSTEM_MD.format(name="shipping"),
    })
    git_repo.commit("edit", {"assistants/billing/system.md": SYSTEM_MD.format(name="refunds")})
    library = make_library(git_repo)
    assert library.list() == ["billing", "shipping/eu"]
    assert [r.label for r in library.history("billing")[0]] == ["v1", "v2"]
    version = library.get("billing", "v1")
    assert version.prompt.path == "assistants/billing/system.md"
    rendered = version.render({"question": "refund?"})
    assert rendered.messages[0].content == "You are the billing assistant."


def test_environment_variables_adopt_a_layout_without_a_config_file(
    git_repo, make_library, monkeypatch
):
    git_repo.commit("flat", {"a.md": "Alpha {{ x }}", "b.md": "Beta", "README.txt": "no"})
    monkeypatch.setenv("PROMPTCTL_ROOT", ".")
    monkeypatch.setenv("PROMPTCTL_PATTERN", "{name}.md")
    library = make_library(git_repo)
    assert library.list() == ["a", "b"]
    assert library.get("a", "v1").render({"x": 1}).text == "Alpha 1"


def test_options_override_the_config_file_of_the_repository(git_repo, make_library):
    git_repo.commit("two roots", {
        "promptctl.toml": 'root = "old"\n',
        "old/a.prompt": "old",
        "new/b.prompt": "new",
    })
    assert make_library(git_repo).list() == ["a"]
    assert make_library(git_repo, root="new").list() == ["b"]


@pytest.mark.parametrize(
    "name", ["triage", "support/triage", "a.b-c_d/e2", "0day", "Summarize_PR", "support/Triage"]
)
def test_valid_prompt_names_are_accepted(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["support//triage", "/abs", "a/", "-x", "a b", "", "é"])
def test_invalid_prompt_names_are_refused(name):
    with pytest.raises(ConfigError, match="invalid prompt name"):
        check_name(name)


@given(name=st.from_regex(NAME_RE, fullmatch=True), pattern=st.sampled_from(
    ["{name}.prompt", "{name}/system.md", "p-{name}.j2", "{name}"]
))
def test_a_name_maps_to_a_path_and_back(name, pattern):
    layout = Layout(pattern=pattern)
    assert layout.name_of(layout.relpath_of(name)) == name
