"""`promptctl init`."""

from __future__ import annotations

import json

from promptctl.cli.main import cli


def test_init_creates_a_repository_and_says_what_it_wrote(runner, tmp_path):
    target = tmp_path / "fresh"
    result = runner.invoke(cli, ["init", str(target)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"Created a git repository at {target}"
    assert "  wrote promptctl.toml" in lines
    assert "  wrote prompts/hello.prompt" in lines
    assert "  wrote prompts/partials/tone.j2" in lines
    assert lines[-1].startswith("Next: commit the files")
    assert (target / ".git").is_dir()
    assert (target / "prompts/hello.prompt").is_file()


def test_init_json_reports_the_layout_and_the_files(runner, tmp_path, json_of):
    data = json_of(runner.invoke(cli, ["init", str(tmp_path / "fresh"), "--json"]))
    assert data["created_repository"] is True
    assert data["repository"] == str(tmp_path / "fresh")
    assert data["layout"] == {"root": "prompts", "pattern": "{name}.prompt", "branch": "main"}
    assert "prompts/hello.prompt" in data["written"]
    assert data["kept"] == []


def test_init_twice_keeps_what_is_there(runner, tmp_path):
    target = tmp_path / "fresh"
    runner.invoke(cli, ["init", str(target)])
    (target / "promptctl.toml").write_text('root = "prompts"\n')
    result = runner.invoke(cli, ["init", str(target)])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == f"Using the repository at {target}"
    assert "  kept  promptctl.toml (already there)" in result.stdout
    assert "  kept  prompts (already there)" in result.stdout
    assert (target / "promptctl.toml").read_text() == 'root = "prompts"\n'


def test_init_takes_the_layout_from_the_global_options(runner, tmp_path, json_of):
    target = tmp_path / "folders"
    data = json_of(
        runner.invoke(
            cli,
            ["--root", "llm", "--pattern", "{name}/system.md", "--branch", "trunk",
             "init", str(target), "--json"],
        )
    )
    assert data["layout"] == {"root": "llm", "pattern": "{name}/system.md", "branch": "trunk"}
    assert (target / "llm/hello/system.md").is_file()
    listed = json.loads(runner.invoke(cli, ["--repo", str(target), "list", "--json"]).stdout)
    assert [e["prompt"] for e in listed] == ["hello"]


def test_an_initialised_repository_lints_lists_and_renders_once_committed(
    runner, tmp_path, make_git_repo, json_of
):
    repo = make_git_repo("project")
    assert runner.invoke(cli, ["init", str(repo.path)]).exit_code == 0
    repo.commit("start with promptctl")
    base = ["--repo", str(repo.path)]
    lint = runner.invoke(cli, [*base, "lint"])
    assert lint.exit_code == 0
    assert lint.stdout == "1 prompt(s) checked: 0 error(s), 0 warning(s)\n"
    listed = json_of(runner.invoke(cli, [*base, "list", "--json"]))
    assert [(e["prompt"], e["label"]) for e in listed] == [("hello", "v1")]
    rendered = json_of(runner.invoke(cli, [*base, "render", "hello@v1", "--sample", "2", "--json"]))
    assert rendered["messages"][1] == {"role": "user", "content": "Say hello to Grace."}
    assert "ISO code fr" in rendered["messages"][0]["content"]


def test_init_in_a_bare_repository_is_a_clean_error(runner, git_repo, tmp_path, fails):
    git_repo.commit("first", {"README.md": "hi"})
    bare = tmp_path / "bare.git"
    git_repo.git("clone", "-q", "--bare", str(git_repo.path), str(bare))
    fails(runner.invoke(cli, ["init", str(bare)]), "is a bare repository")
