"""`status` read from the embedded SQLite file with the driver alone answers what the release
service answers: every filter, canaries and their weights, numbers and previews, times; and
whatever the file cannot answer by itself (an unknown environment, a schema to upgrade, a
file it may not write) goes to the service, which answers or refuses as it always did."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from promptctl.registry.core import Registry, Settings
from promptctl.registry.errors import EnvironmentNotFound, PromptNotFound
from promptctl.registry.releases.actions import Promote
from promptctl.registry.releases.status_reader import read_status
from promptctl.registry.store.database import current_revision, head_revision
from promptctl.registry.store.embedded import default_sqlite_file, migration_head


def text(n: int) -> str:
    return f"---\ndescription: d\n---\nWording {n}.\n"


@pytest.fixture
def released(git_repo, migrated_sqlite) -> Path:
    """A repository whose embedded database holds stables, a canary and a preview."""
    git_repo.commit("ignore", {".gitignore": ".promptctl/\n"})
    for n in (1, 2, 3):
        git_repo.commit(f"c{n}", {"prompts/a.prompt": text(n), "prompts/b.prompt": text(10 + n)})
    file = default_sqlite_file(git_repo.path)
    file.parent.mkdir()
    shutil.copyfile(migrated_sqlite, file)
    registry = Registry(Settings(repo=git_repo.path))
    for action in (
        Promote(prompt="a", environment="staging", ref="v1", actor="ada"),
        Promote(prompt="a", environment="production", ref="v2", actor="ada", confirmed=True),
        Promote(
            prompt="a",
            environment="production",
            ref="v3",
            canary_bp=1250,
            actor="bob",
            confirmed=True,
        ),
        Promote(prompt="b", environment="staging", ref="v2", actor="bob"),
    ):
        registry.perform(action)
    git_repo.git("checkout", "-q", "-b", "draft")
    git_repo.commit("draft", {"prompts/b.prompt": text(99)})
    registry.create_environment("preview")
    registry.perform(Promote(prompt="b", environment="preview", ref="draft", actor="cy"))
    git_repo.git("checkout", "-q", "main")
    registry.close()
    return file


def fresh(repo) -> Registry:
    return Registry(Settings(repo=repo.path))


FILTERS = [(None, None), ("a", None), (None, "production"), ("b", "staging"), ("zzz", None)]


@pytest.mark.parametrize(("prompt", "environment"), FILTERS)
def test_the_file_read_alone_answers_what_the_service_answers(
    git_repo, released, prompt, environment
):
    direct = read_status(released, migration_head(), prompt, environment)
    service = fresh(git_repo)
    try:
        assert direct == service.releases.status(prompt, environment)
    finally:
        service.close()
    if prompt is None and environment is None:
        shown = {(s.prompt, s.environment): s for s in direct}
        assert shown["a", "production"].canary.label == "v3"
        assert shown["a", "production"].weight_bp == 1250
        assert shown["b", "preview"].stable.number is None  # a preview of a draft
        assert shown["b", "preview"].stable.source.startswith("draft@")
        assert all(s.updated_at.tzinfo is not None for s in direct)


def test_status_through_the_facade_reads_the_file_and_refuses_as_before(git_repo, released):
    registry = fresh(git_repo)
    assert [(s.prompt, s.environment) for s in registry.status()] == [
        ("a", "staging"), ("a", "production"), ("b", "staging"), ("b", "preview")
    ]  # fmt: skip
    assert "releases" not in registry.__dict__  # the service was never built
    with pytest.raises(EnvironmentNotFound):
        registry.status(environment="nowhere")
    with pytest.raises(PromptNotFound):
        fresh(git_repo).status("zzz")


def test_status_without_canaries_starts_without_sqlalchemy_or_other_commands(
    git_repo, released, project_root
):
    # A canary's verdict needs the metrics, so the database layer: staging has none.
    code = (
        "import sys\n"
        "from promptctl.cli.main import main\n"
        "sys.argv = ['promptctl', '--repo', sys.argv[1], 'status', '--env', 'staging']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('sqlalchemy', 'promptctl.cli.serve', 'promptctl.cli.review', 'fastapi')\n"
        "print(' '.join(m for m in heavy if m in sys.modules) or 'none')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(git_repo.path)],
        cwd=project_root,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[-1] == "none"  # nor the modules of other commands (cli.main's map)
    assert [line.split()[:3] for line in lines[1:-1]] == [
        ["a", "staging", "v1"],
        ["b", "staging", "v2"],
    ]


def test_a_file_behind_head_is_left_to_the_service_which_upgrades_it(git_repo, released):
    from promptctl.registry.store.database import make_engine

    engine = make_engine(f"sqlite:///{released}")
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'elsewhere'")
    assert read_status(released, migration_head(), None, None) is None
    with engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{head_revision()}'")
    engine.dispose()

    assert read_status(released.with_name("missing.db"), migration_head(), None, None) is None
    registry = fresh(git_repo)
    assert len(registry.status()) == 4
    assert current_revision(registry.database.engine) == head_revision()
    registry.close()
