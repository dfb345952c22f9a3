"""`init`: a new prompt repository, or promptctl.toml added to an existing one."""

from __future__ import annotations

import pytest

from promptctl.registry.errors import RepositoryError
from promptctl.registry.prompts.layout import load_layout
from promptctl.registry.prompts.library import PromptLibrary
from promptctl.registry.prompts.lint import lint_library
from promptctl.registry.prompts.scaffold import init_project


def test_init_creates_a_repository_with_config_and_an_example_that_lints_clean(tmp_path):
    result = init_project(tmp_path / "new")
    assert result["created_repository"] is True
    assert result["written"] == [
        "promptctl.toml", ".gitignore", "prompts/hello.prompt", "prompts/partials/tone.j2",
    ]
    assert (tmp_path / "new/.gitignore").read_text() == ".promptctl/\n"
    assert result["layout"] == {"root": "prompts", "pattern": "{name}.prompt", "branch": "main"}
    library = PromptLibrary(tmp_path / "new")
    assert library.list() == ["hello"]
    assert lint_library(library) == []
    version = library.get("hello")
    for sample in version.prompt.samples:
        assert version.render(sample).messages[1].content.startswith("Say hello to ")


def test_init_writes_a_config_that_loads_back_to_the_chosen_layout(tmp_path):
    init_project(tmp_path / "r", root="llm", pattern="{name}/system.md", branch="trunk")
    layout = load_layout(tmp_path / "r")
    assert (layout.root, layout.pattern, layout.branch) == ("llm", "{name}/system.md", "trunk")
    assert (tmp_path / "r/llm/hello/system.md").is_file()
    assert PromptLibrary(tmp_path / "r").list() == ["hello"]


def test_init_in_an_existing_repository_never_overwrites_a_file(git_repo):
    git_repo.commit("existing", {
        "promptctl.toml": 'root = "prompts"\n',
        "prompts/mine.prompt": "Mine.",
        ".gitignore": "*.pyc",
    })
    result = init_project(git_repo.path)
    assert result["created_repository"] is False
    assert result["written"] == [".gitignore"]
    assert (git_repo.path / ".gitignore").read_text() == "*.pyc\n.promptctl/\n"
    assert init_project(git_repo.path)["written"] == []
    assert result["kept"] == ["promptctl.toml", "prompts"]
    assert (git_repo.path / "promptctl.toml").read_text() == 'root = "prompts"\n'
    assert not (git_repo.path / "prompts/hello.prompt").exists()


def test_init_tracks_the_current_branch_of_an_existing_repository(make_git_repo):
    repo = make_git_repo("trunk-repo", branch="trunk")
    repo.commit("first", {"README.md": "hi"})
    result = init_project(repo.path)
    assert result["layout"]["branch"] == "trunk"
    assert 'branch = "trunk"' in (repo.path / "promptctl.toml").read_text()


def test_init_refuses_a_bare_repository(git_repo, tmp_path):
    git_repo.commit("first", {"README.md": "hi"})
    bare = tmp_path / "bare.git"
    git_repo.git("clone", "-q", "--bare", str(git_repo.path), str(bare))
    with pytest.raises(RepositoryError, match="bare repository"):
        init_project(bare)
