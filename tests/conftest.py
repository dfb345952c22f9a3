"""Fixtures shared by every test package: an isolated HOME and git, repository builders,
databases, and the registry.

The packages chain their fixtures `repo -> settings -> registry -> app -> client` (server)
and `repo -> settings -> registry -> runner` (cli), each built per test on tmp_path: the
package's conftest.py gives `repo` and `settings`; `registry` below is built from them.
Shared helpers that are not fixtures (`wait_until`, servers on their own ports) are in
support.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pygit2
import pytest

from promptctl.registry.core import Registry, Settings
from promptctl.registry.prompts.library import PromptLibrary

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Give every test its own HOME and git config so nothing depends on this machine."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test Author\n\temail = author@example.com\n"
        "[init]\n\tdefaultBranch = main\n"
    )
    for key in list(os.environ):
        if key.startswith("PROMPTCTL_") and key != "PROMPTCTL_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    # pygit2 caches the global config search path per process; point it at this HOME.
    for level in (pygit2.enums.ConfigLevel.GLOBAL, pygit2.enums.ConfigLevel.XDG):
        pygit2.settings.search_path[level] = str(home)
    return home


class GitRepo:
    """A throwaway repository driven with the real `git` command."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str) -> str:
        env = {**os.environ, **GIT_ENV}
        result = subprocess.run(
            ["git", *args], cwd=self.path, env=env, check=True, capture_output=True, text=True
        )
        return result.stdout.strip()

    def write(self, relpath: str, text: str) -> Path:
        target = self.path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return target

    def remove(self, relpath: str) -> None:
        (self.path / relpath).unlink()

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        """Write `files`, stage everything and commit; return the new commit's sha."""
        for relpath, text in (files or {}).items():
            self.write(relpath, text)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    """An empty repository on branch main, made with `git init`."""
    path = tmp_path / "repo"
    path.mkdir()
    repo = GitRepo(path)
    repo.git("init", "-q", "-b", "main")
    return repo


@pytest.fixture
def make_library() -> Callable[..., PromptLibrary]:
    def make(repo: GitRepo | Path, **options: str) -> PromptLibrary:
        path = repo.path if isinstance(repo, GitRepo) else repo
        return PromptLibrary(path, **options)

    return make


@pytest.fixture
def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _database_params() -> list:
    params: list = ["sqlite"]
    if os.environ.get("PROMPTCTL_TEST_POSTGRES_URL"):
        params.append(pytest.param("postgresql", marks=pytest.mark.postgres))
    return params


@pytest.fixture(params=_database_params())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: an SQLite file, or a PostgreSQL schema of its own.

    PostgreSQL runs only when PROMPTCTL_TEST_POSTGRES_URL is set (CI always sets it).
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    yield from postgres_schema_url(os.environ["PROMPTCTL_TEST_POSTGRES_URL"])


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated to head once per session; tests start from copies of it
    (`migrated_database_url`), never write it."""
    from promptctl.registry.store.database import make_engine, upgrade

    path = tmp_path_factory.mktemp("migrated") / "registry.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    return path


@pytest.fixture
def migrated_database_url(database_url: str, migrated_sqlite: Path) -> str:
    """`database_url` with its schema at the newest migration, as `promptctl db upgrade`
    leaves it: a copy of the session's migrated SQLite file, or PostgreSQL's fresh schema
    upgraded (the service never upgrades PostgreSQL by itself)."""
    from sqlalchemy.engine import make_url

    from promptctl.registry.store.database import make_engine, upgrade

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        shutil.copyfile(migrated_sqlite, url.database)
    else:
        engine = make_engine(database_url)
        upgrade(engine)
        engine.dispose()
    return database_url


def postgres_schema_url(base: str) -> Iterator[str]:
    """Create a schema of its own on the server, yield a URL using it, drop it afterwards."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"promptctl_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def make_git_repo(tmp_path: Path) -> Callable[..., GitRepo]:
    """Build more repositories in this test's tmp_path, on any initial branch."""

    def make(name: str, branch: str = "main") -> GitRepo:
        path = tmp_path / name
        path.mkdir()
        repo = GitRepo(path)
        repo.git("init", "-q", "-b", branch)
        return repo

    return make


@pytest.fixture(scope="session")
def _built_histories(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {}


@pytest.fixture
def built_repo(
    git_repo: GitRepo,
    _built_histories: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, Callable[[GitRepo], None]], GitRepo]:
    """Fill this test's `git_repo` with a history that `build` makes once per session.

    `build` runs with the `git` command inside the first test that asks for `key` (so under
    its isolated HOME); later tests get a fresh copy of the result, never a shared one.
    """

    def fill(key: str, build: Callable[[GitRepo], None]) -> GitRepo:
        template = _built_histories.get(key)
        if template is None:
            template = tmp_path_factory.mktemp("history") / "repo"
            shutil.copytree(git_repo.path, template, symlinks=True)
            build(GitRepo(template))
            _built_histories[key] = template
        shutil.rmtree(git_repo.path)
        shutil.copytree(template, git_repo.path, symlinks=True)
        return git_repo

    return fill


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    """The facade over this test's repository and database, built from the package's
    `settings`: what the server's app and the CLI runner are built on."""
    registry = Registry(settings)
    yield registry
    registry.close()
