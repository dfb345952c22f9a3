"""Adopting existing prompt repositories (issue 21): history across moves and renames,
template engines per prompt, names that are not skipped in silence, the repository's own
branch, and the persistent version index. Repositories are made with `git`; outcomes are
read through the Registry facade and the `promptctl` command (click's runner)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from promptctl.cli.main import cli
from promptctl.registry.core import Registry, Settings
from promptctl.registry.errors import RenderLimitExceeded, TemplateError
from promptctl.registry.prompts.index_store import IndexStore
from promptctl.registry.prompts.promptversion import version_from_files
from promptctl.registry.prompts.render_limits import RenderLimits


def registry_of(repo, **settings: object) -> Registry:
    return Registry(Settings(repo=repo.path, **settings))


def promptctl(repo, *args: str):
    result = CliRunner().invoke(cli, ["--repo", str(repo.path), *args])
    return result


def prompt(text: str) -> str:
    return f"---\ndescription: d\n---\n{text}\n"


# -- history across moves and renames ---


def test_a_root_folder_moved_in_one_commit_keeps_every_version(git_repo):
    for n in range(1, 4):
        git_repo.commit(f"wording {n}", {"prompts/support/triage.prompt": prompt(f"Triage {n}.")})
    git_repo.git("mv", "prompts", "library")
    git_repo.commit("move the prompts", {"promptctl.toml": 'root = "library"\n'})
    git_repo.commit("wording 4", {"library/support/triage.prompt": prompt("Triage 4.")})

    library = registry_of(git_repo).library
    records, index = library.history("support/triage")
    assert [r.label for r in records] == ["v1", "v2", "v3", "v4"]
    moves = [e for e in index.events["support/triage"] if e.moved_from]
    assert [(e.moved_from, e.commit.summary, e.number) for e in moves] == [
        ("prompts/support/triage.prompt", "move the prompts", 3)
    ]
    old = library.get("support/triage", "v2")  # read from where the file was then
    assert old.render({}).text == "Triage 2."
    assert old.number == 2

    out = promptctl(git_repo, "log", "support/triage")
    assert out.exit_code == 0, out.output
    assert "v1" in out.output
    assert "moved from prompts/support/triage.prompt in" in out.output


def test_a_file_renamed_with_an_edit_in_the_same_commit_continues_its_history(git_repo):
    body = "\n".join(f"Rule {n}: be precise about step {n}." for n in range(12))
    git_repo.commit("one", {"prompts/summarise.prompt": prompt(body)})
    git_repo.commit("two", {"prompts/summarise.prompt": prompt(body + "\nRule 12: cite.")})
    git_repo.git("mv", "prompts/summarise.prompt", "prompts/summarize.prompt")
    git_repo.commit(
        "rename and tweak", {"prompts/summarize.prompt": prompt(body + "\nRule 12: cite!")}
    )

    library = registry_of(git_repo).library
    records, index = library.history("summarize")
    assert [r.label for r in records] == ["v1", "v2", "v3"]
    assert index.events["summarize"][-1].moved_from == "prompts/summarise.prompt"
    assert library.get("summarize", "v1").render({}).text.startswith("Rule 0")
    # The old name keeps its own history, ending where it moved.
    old_records, old_index = library.history("summarise")
    assert len(old_records) == 2
    assert old_index.current_digest("summarise") is None


def test_an_unrelated_file_added_as_another_is_deleted_is_not_a_move(git_repo):
    alpha = "\n".join(f"Alpha rule {n}: answer in French." for n in range(10))
    other = "\n".join(f"Step {n} of the checklist: verify {n * 7} items." for n in range(10))
    git_repo.commit("a", {"prompts/a.prompt": alpha})
    git_repo.git("rm", "-q", "prompts/a.prompt")
    git_repo.commit("swap", {"prompts/b.prompt": other})
    records, index = registry_of(git_repo).library.history("b")
    assert [r.label for r in records] == ["v1"]
    assert all(e.moved_from is None for e in index.events["b"])


def test_a_prompt_deleted_and_readded_keeps_its_numbers(git_repo):
    git_repo.commit("one", {"prompts/p.prompt": prompt("One.")})
    git_repo.commit("two", {"prompts/p.prompt": prompt("Two.")})
    git_repo.git("rm", "-q", "prompts/p.prompt")
    git_repo.commit("drop")
    git_repo.commit("back", {"prompts/p.prompt": prompt("One.")})
    git_repo.commit("three", {"prompts/p.prompt": prompt("Three.")})
    records, index = registry_of(git_repo).library.history("p")
    assert [r.label for r in records] == ["v1", "v2", "v3"]
    assert [e.number for e in index.events["p"]] == [1, 2, None, 1, 3]


def test_released_numbers_stay_when_history_is_renumbered(git_repo, tmp_path):
    git_repo.commit("one", {"prompts/p.prompt": prompt("One.")})
    git_repo.commit("two", {"prompts/p.prompt": prompt("Two.")})
    registry = registry_of(git_repo)
    library = registry.library
    # The release database numbered Two as v1 (as a numbering that had not yet followed
    # the file's history would have): v1 keeps meaning that content.
    two = library.get("p", "v2").digest
    library.released = lambda: {"p": {two: 1}}
    library._index = None
    assert library.get("p", "v1").digest == two
    assert library.get("p", "v2").render({}).text == "One."
    git_repo.commit("three", {"prompts/p.prompt": prompt("Three.")})
    assert library.get("p", "HEAD").number == 3


# -- template engines ---


def markdown_library(git_repo) -> None:
    git_repo.commit(
        "markdown prompts",
        {
            "promptctl.toml": (
                'root = "patterns"\npattern = "{name}/system.md"\ntemplate = "plain"\n'
            ),
            "patterns/setup/system.md": "## Setup {#setup}\n\nOpen {{url}} and use {braces}.\n",
            "patterns/Summarize_PR/system.md": "# Summarize a pull request\n",
            "patterns/bad name/system.md": "# Never a prompt\n",
            "patterns/greet/system.md": (
                "---\ninput:\n  who: string\nsamples:\n  - {who: Ada}\n---\n"
                "Hello ${who}; keep $${literal}.\n"
            ),
            "patterns/stache/system.md": (
                "---\ntemplate: mustache\ninput:\n  who: string\n  items: {type: array}\n"
                "samples:\n  - {who: Ada, items: [{t: a}]}\n---\n"
                "Hi {{who}} <&>{{#items}} [{{t}}]{{/items}}{{> shared/sig.mustache}}\n"
            ),
            "patterns/shared/sig.mustache": " -- the team",
        },
    )


def test_a_plain_markdown_library_renders_as_written(git_repo):
    markdown_library(git_repo)
    registry = registry_of(git_repo)
    library = registry.library
    setup = library.get("setup", "HEAD")
    assert setup.engine == "plain"
    assert setup.render({}).text == "## Setup {#setup}\n\nOpen {{url}} and use {braces}."
    assert library.get("greet", "HEAD").render({"who": "Bo"}).text == ("Hello Bo; keep ${literal}.")
    stache = library.get("stache", "HEAD")
    assert stache.engine == "mustache"
    assert stache.render({"who": "Bo", "items": [{"t": "x"}]}).text == ("Hi Bo <&> [x] -- the team")
    assert "shared/sig.mustache" in stache.partials


def test_a_plain_library_lints_with_warnings_not_errors(git_repo):
    markdown_library(git_repo)
    run = registry_of(git_repo).lint()
    codes = {(f.path, f.code) for f in run.findings}
    assert ("patterns/setup/system.md", "template-text") in codes
    assert ("patterns/bad name/system.md", "skipped-file") in codes
    assert run.errors == 0, [str(f) for f in run.findings]
    assert run.checked == 4  # setup, Summarize_PR, greet, stache; `bad name` skipped

    out = promptctl(git_repo, "list")
    assert out.exit_code == 0, out.output
    assert "Summarize_PR" in out.output
    assert "Skipped 1 file(s) shaped like a prompt:" in out.output
    assert "patterns/bad name/system.md: name 'bad name' has characters" in out.output
    lint = promptctl(git_repo, "lint")
    assert "4 prompt(s) checked, 1 file(s) skipped: 0 error(s)" in lint.output


def test_a_capitalised_name_is_its_own_prompt(git_repo):
    markdown_library(git_repo)
    library = registry_of(git_repo).library
    assert library.get("Summarize_PR").render({}).text == "# Summarize a pull request"
    assert "summarize_pr" not in library.list()


def test_the_default_engine_is_part_of_the_digest_and_the_snapshot(git_repo):
    markdown_library(git_repo)
    plain = registry_of(git_repo).library.get("setup", "HEAD")
    as_jinja = registry_of(git_repo, template="jinja2").library.get("setup", "HEAD")
    assert plain.digest != as_jinja.digest
    files = plain.files()
    rebuilt = version_from_files(
        "setup",
        digest=plain.digest,
        root=plain.root,
        relpath=plain.relpath,
        files=files,
        source="snapshot",
    )
    assert rebuilt.engine == "plain"
    assert rebuilt.render({}).text == plain.render({}).text


def test_mustache_rendering_is_bounded(git_repo):
    nested = "{{#a}}{{#a}}{{#a}}{{#a}}xxxxxxxxxx{{/a}}{{/a}}{{/a}}{{/a}}"
    git_repo.commit(
        "bomb",
        {
            "prompts/bomb.prompt": (
                f"---\ntemplate: mustache\ninput:\n  a: {{type: array}}\n---\n{nested}\n"
            ),
            "prompts/broken.prompt": "---\ntemplate: mustache\n---\n{{#open}} never closed\n",
        },
    )
    library = registry_of(git_repo).library
    bomb = library.get("bomb")
    with pytest.raises(RenderLimitExceeded, match="max_output_chars"):
        bomb.render({"a": list(range(60))}, limits=RenderLimits(max_output_chars=100_000))
    with pytest.raises(TemplateError, match="syntax"):
        library.get("broken").render({})


def test_an_unknown_engine_is_refused_with_its_line(git_repo):
    git_repo.commit(
        "x", {"prompts/x.prompt": "---\ndescription: d\ntemplate: handlebars\n---\nX\n"}
    )
    run = registry_of(git_repo).lint()
    assert [(f.line, f.code) for f in run.findings] == [(3, "invalid-file")]
    assert "not an engine" in run.findings[0].message


# -- the tracked branch ---


def test_a_master_only_repository_numbers_on_master_and_says_it_guessed(git_repo):
    git_repo.git("checkout", "-q", "-b", "master")
    git_repo.commit("one", {"prompts/p.prompt": prompt("One.")})
    git_repo.commit("two", {"prompts/p.prompt": prompt("Two.")})
    git_repo.git("branch", "-q", "-D", "main") if "main" in git_repo.git("branch") else None
    library = registry_of(git_repo).library
    assert library.layout.branch == "master"
    assert library.get("p").number == 2
    out = promptctl(git_repo, "list")
    assert out.exit_code == 0, out.output
    assert "(new)" not in out.output
    assert "numbered on branch 'master' (guessed from the branch checked out" in out.output


def test_a_clone_numbers_on_the_remote_default_branch(git_repo, tmp_path):
    git_repo.git("checkout", "-q", "-b", "trunk")
    git_repo.commit("one", {"prompts/p.prompt": prompt("One.")})
    clone = tmp_path / "clone"
    git_repo.git("clone", "-q", str(git_repo.path), str(clone))
    library = Registry(Settings(repo=clone)).library
    assert (library.layout.branch, library.branch_source) == ("trunk", "origin/HEAD")
    assert library.get("p").number == 1


def test_a_configured_branch_is_not_guessed(git_repo):
    git_repo.commit("one", {"promptctl.toml": 'branch = "main"\n', "prompts/p.prompt": "P"})
    assert registry_of(git_repo).library.branch_note is None


# -- the persistent index ---


def test_the_index_is_kept_updated_incrementally_and_rebuilt_when_damaged(git_repo):
    git_repo.commit("one", {"prompts/p.prompt": prompt("One.")})
    library = registry_of(git_repo).library
    assert [r.label for r in library.history("p")[0]] == ["v1"]
    store = IndexStore(library.store, library.layout, library.layout.branch)
    assert store.path.is_file()
    assert store.path.is_relative_to(Path(library.store.git_dir))

    git_repo.commit("two", {"prompts/p.prompt": prompt("Two.")})
    fresh = registry_of(git_repo).library
    assert [r.label for r in fresh.history("p")[0]] == ["v1", "v2"]
    with sqlite3.connect(store.path) as db:
        tip = db.execute("SELECT value FROM meta WHERE key = 'tip'").fetchone()[0]
    assert tip == git_repo.git("rev-parse", "HEAD")

    store.path.write_bytes(b"not a database at all")
    assert [r.label for r in registry_of(git_repo).library.history("p")[0]] == ["v1", "v2"]

    # History rewritten: the stored tip is no ancestor any more, so it is built again.
    git_repo.git("reset", "-q", "--hard", "HEAD~1")
    git_repo.commit("other two", {"prompts/p.prompt": prompt("Other.")})
    records = registry_of(git_repo).library.history("p")[0]
    assert [r.commit.summary for r in records] == ["one", "other two"]


def test_the_index_stores_each_version_once_and_small(git_repo):
    # 300 commits each changing 10 prompts: 3,000 versions, written with git fast-import.
    stream = ["reset refs/heads/main"]
    for n in range(300):
        stream += [
            "commit refs/heads/main",
            f"committer A <a@example.com> {1700000000 + n} +0000",
            "data 2",
            "c\n",
        ]
        for k in range(10):
            text = prompt(f"Wording {n} of {k}.")
            stream += [f"M 100644 inline prompts/p{k}.prompt", f"data {len(text)}", text]
    subprocess.run(
        ["git", "fast-import", "--quiet"],
        cwd=git_repo.path,
        input=("\n".join(stream) + "\n").encode(),
        check=True,
    )
    git_repo.git("checkout", "-q", "-f", "main")

    library = registry_of(git_repo).library
    records = library.history("p3")[0]
    assert [r.number for r in records] == list(range(1, 301))
    store = IndexStore(library.store, library.layout, library.layout.branch)
    # A version costs its digest (32 bytes) and a few integers: well under 150 bytes with
    # its event and index entries (digests, shas and names as text in every row: ~460).
    assert store.path.stat().st_size / 3000 < 150
    with sqlite3.connect(store.path) as db:
        own_digests = db.execute("SELECT count(*) FROM events WHERE digest IS NOT NULL")
        assert own_digests.fetchone() == (0,)
    warm = registry_of(git_repo).library
    assert [(r.number, r.digest, r.commit.sha) for r in warm.history("p3")[0]] == [
        (r.number, r.digest, r.commit.sha) for r in records
    ]
    assert warm.get("p3", "v7").render({}).text == "Wording 6 of 3."


def test_an_index_of_another_format_is_removed_when_the_new_one_is_built(git_repo):
    git_repo.commit("one", {"prompts/p.prompt": prompt("One.")})
    library = registry_of(git_repo).library
    library.history("p")
    store = IndexStore(library.store, library.layout, library.layout.branch)
    folder = store.path.parent
    old = folder / "version-index-0123456789abcdef.sqlite3"
    other_branch = folder / "version-index-fedcba9876543210.sqlite3"
    for path, fmt in ((old, 3), (other_branch, store.key["format"])):
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("INSERT INTO meta VALUES ('key', ?)", (json.dumps({"format": fmt}),))
    store.path.unlink()
    assert [r.label for r in registry_of(git_repo).library.history("p")[0]] == ["v1"]
    assert store.path.is_file()
    assert not old.exists()
    assert other_branch.exists()
