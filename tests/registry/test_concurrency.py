"""Concurrent release actions over real, separate database connections.

Two worker processes (spawned, so each has its own interpreter, engine and connections)
act on the same release at once. To make the overlap certain rather than likely, a
barrier inside `ReleaseService._apply` holds each worker after it has read the revision
it expects and before it writes: both then race for the same revision, so exactly one
must win and the other must get ReleaseConflict. Runs without the held barrier only
start together; their assertions hold whatever the interleaving.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from sqlalchemy import func, select

from promptctl.registry.errors import RegistryError, ReleaseConflict
from promptctl.registry.prompts.library import PromptLibrary
from promptctl.registry.releases.service import ReleaseService
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import ReleaseLog

SPAWN = multiprocessing.get_context("spawn")
WAIT_SECONDS = 60  # a limit against hanging forever, never an assertion
CONFLICT = "was changed by another action at the same time"


# -- the worker processes ------------------------------------------------------------------


def serve(inbox: Any, outbox: Any, barrier: Any) -> None:
    """Run release actions sent by the test, one at a time, until told to stop."""
    while (task := inbox.get()) is not None:
        outbox.put(run_task(task, barrier))


def run_task(task: dict[str, Any], barrier: Any) -> tuple[str, Any]:
    """Do one action; return ("ok", revision), ("conflict", message) or ("error", text)."""
    if task["action"] == "promptctl":
        return run_promptctl(task["args"], barrier)
    database = Database(task["url"])
    try:
        service = ReleaseService(database)
        database.ensure_schema()  # connect and check the schema before the race starts
        action = prepare(service, task)
        if task["hold_in_apply"]:
            hold_in_apply(service, lambda: barrier.wait(WAIT_SECONDS))
        else:
            barrier.wait(WAIT_SECONDS)
        try:
            return ("ok", action().revision)
        except ReleaseConflict as exc:
            return ("conflict", str(exc))
    except (RegistryError, threading.BrokenBarrierError) as exc:
        barrier.abort()  # free the rival at once instead of at its timeout
        return ("error", f"{type(exc).__name__}: {exc}")
    finally:
        database.dispose()


def run_promptctl(args: list[str], barrier: Any) -> tuple[str, Any]:
    """Run the real command in this process, held like the services above; return its exit."""
    from click.testing import CliRunner

    from promptctl.cli.main import cli

    original = ReleaseService._apply

    def held(self: ReleaseService, *a: Any, **kw: Any) -> Any:
        barrier.wait(WAIT_SECONDS)
        return original(self, *a, **kw)

    ReleaseService._apply = held  # type: ignore[method-assign]
    try:
        result = CliRunner().invoke(cli, args)
    finally:
        ReleaseService._apply = original  # type: ignore[method-assign]
    if result.exit_code not in (0, 1):
        barrier.abort()
    return ("exit", (result.exit_code, result.stdout, result.stderr))


def prepare(service: ReleaseService, task: dict[str, Any]) -> Callable[[], Any]:
    """Load what the action needs (git reads included) so the race is the action alone."""
    prompt, env, actor = task["prompt"], task["env"], task["actor"]
    if task["action"] == "promote":
        version = PromptLibrary(task["repo"]).get(prompt, task["ref"])
        return lambda: service.promote(version, env, actor=actor, confirmed=True)
    if task["action"] == "rollback":
        return lambda: service.rollback(prompt, env, actor=actor)
    if task["action"] == "ramp":
        return lambda: service.ramp(prompt, env, task["weight_bp"], actor=actor, confirmed=True)
    raise AssertionError(f"unknown action {task['action']}")


def hold_in_apply(service: ReleaseService, wait: Callable[[], Any]) -> None:
    """Make the service wait for its rival after reading the revision, before writing."""
    original = service._apply

    def held(*args: Any, **kwargs: Any) -> Any:
        wait()
        return original(*args, **kwargs)

    service._apply = held  # type: ignore[method-assign]


class Workers:
    """Two spawned processes that each run one task per round, at the same time."""

    def __init__(self) -> None:
        self.barrier = SPAWN.Barrier(2)
        self.inboxes = [SPAWN.Queue(), SPAWN.Queue()]
        self.outboxes = [SPAWN.Queue(), SPAWN.Queue()]
        self.processes = [
            SPAWN.Process(target=serve, args=(inbox, outbox, self.barrier), daemon=True)
            for inbox, outbox in zip(self.inboxes, self.outboxes, strict=True)
        ]
        for process in self.processes:
            process.start()

    def run(self, first: dict[str, Any], second: dict[str, Any]) -> list[tuple[str, Any]]:
        self.barrier.reset()
        for inbox, task in zip(self.inboxes, (first, second), strict=True):
            inbox.put(task)
        try:
            return [outbox.get(timeout=WAIT_SECONDS) for outbox in self.outboxes]
        except Empty:
            pytest.fail("a worker process did not answer")

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for process in self.processes:
            process.join(WAIT_SECONDS)
            if process.is_alive():
                process.terminate()


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """Two worker processes for this module, started with an isolated HOME and git config."""
    home = tmp_path_factory.mktemp("worker-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("GIT_CONFIG_GLOBAL", os.devnull)
        pool = Workers()  # children copy the environment when they start
    yield pool
    pool.close()


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def repo(git_repo) -> Path:
    """greet v1..v3 and other v1."""
    git_repo.commit("one", {"prompts/greet.prompt": "Hello 1\n", "prompts/other.prompt": "Hi\n"})
    git_repo.commit("two", {"prompts/greet.prompt": "Hello 2\n"})
    git_repo.commit("three", {"prompts/greet.prompt": "Hello 3\n"})
    return git_repo.path


@pytest.fixture
def releases(migrated_database_url: str) -> Iterator[ReleaseService]:
    """The workers find the schema ready, even on PostgreSQL."""
    database = Database(migrated_database_url)
    yield ReleaseService(database)
    database.dispose()


def task(
    database_url: str,
    repo: Path,
    action: str,
    *,
    actor: str,
    prompt: str = "greet",
    env: str = "development",
    ref: str | None = None,
    weight_bp: int | None = None,
    hold_in_apply: bool = True,
) -> dict[str, Any]:
    return {
        "url": database_url,
        "repo": str(repo),
        "action": action,
        "actor": actor,
        "prompt": prompt,
        "env": env,
        "ref": ref,
        "weight_bp": weight_bp,
        "hold_in_apply": hold_in_apply,
    }


def setup_releases(releases: ReleaseService, repo: Path, *refs: str, env="development") -> None:
    library = PromptLibrary(repo)
    for ref in refs:
        releases.promote(library.get("greet", ref), env, actor="setup", confirmed=True)


def log_rows(releases: ReleaseService) -> int:
    with releases.db.session() as session:
        return session.scalar(select(func.count()).select_from(ReleaseLog))


def one_win_one_conflict(results: list[tuple[str, Any]]) -> tuple[int, int]:
    """Assert exactly one success and one conflict; return (winner index, its revision)."""
    kinds = [kind for kind, _ in results]
    assert sorted(kinds) == ["conflict", "ok"], results
    winner = kinds.index("ok")
    assert CONFLICT in results[1 - winner][1]
    return winner, results[winner][1]


# -- the same release at once --------------------------------------------------------------


def test_two_processes_promoting_one_release_at_once_give_one_win_and_one_conflict(
    workers, releases, repo, database_url
):
    setup_releases(releases, repo, "v1")

    results = workers.run(
        task(database_url, repo, "promote", ref="v2", actor="alice"),
        task(database_url, repo, "promote", ref="v3", actor="bob"),
    )

    winner, revision = one_win_one_conflict(results)
    state = releases.release("greet", "development")
    assert revision == state.revision == 2
    assert (state.stable.label, state.updated_by) == [("v2", "alice"), ("v3", "bob")][winner]
    assert log_rows(releases) == 2
    [row] = [e for e in releases.history("greet") if e.revision == 2]
    assert (row.action, row.actor, row.to_version.label) == (
        "promote",
        state.updated_by,
        state.stable.label,
    )


def test_two_processes_rolling_back_at_once_go_back_one_release_not_two(
    workers, releases, repo, database_url
):
    setup_releases(releases, repo, "v1", "v2", "v3")

    results = workers.run(
        task(database_url, repo, "rollback", actor="alice"),
        task(database_url, repo, "rollback", actor="bob"),
    )

    _, revision = one_win_one_conflict(results)
    state = releases.release("greet", "development")
    assert (state.stable.label, state.revision, revision) == ("v2", 4, 4)
    assert log_rows(releases) == 4
    assert [e.action for e in releases.history("greet")] == [
        "rollback",
        "promote",
        "promote",
        "promote",
    ]


def test_two_processes_making_the_first_release_at_once_give_one_win_and_one_conflict(
    workers, releases, repo, database_url
):
    results = workers.run(
        task(database_url, repo, "promote", ref="v1", actor="alice"),
        task(database_url, repo, "promote", ref="v2", actor="bob"),
    )

    winner, revision = one_win_one_conflict(results)
    state = releases.release("greet", "development")
    assert revision == state.revision == 1
    assert state.stable.label == ["v1", "v2"][winner]
    assert log_rows(releases) == 1


def test_processes_acting_on_different_releases_at_once_both_succeed(
    workers, releases, repo, database_url
):
    same_prompt_other_env = workers.run(
        task(database_url, repo, "promote", ref="v1", actor="alice"),
        task(database_url, repo, "promote", ref="v2", actor="bob", env="staging"),
    )
    other_prompt_same_env = workers.run(
        task(database_url, repo, "promote", ref="v2", actor="alice"),
        task(database_url, repo, "promote", ref="v1", actor="bob", prompt="other"),
    )

    assert same_prompt_other_env == [("ok", 1), ("ok", 1)]
    assert other_prompt_same_env == [("ok", 2), ("ok", 1)]
    assert {(s.prompt, s.environment, s.stable.label, s.revision) for s in releases.status()} == {
        ("greet", "development", "v2", 2),
        ("greet", "staging", "v2", 1),
        ("other", "development", "v1", 1),
    }
    assert log_rows(releases) == 4


def test_repeated_ramps_started_together_keep_revision_and_log_consistent(
    workers, releases, repo, database_url
):
    setup_releases(releases, repo, "v1")
    library = PromptLibrary(repo)
    releases.promote(library.get("greet", "v2"), "development", actor="setup", canary_bp=100)
    rounds = 6
    results = []

    for n in range(rounds):
        # Distinct weights, so a ramp that runs after its rival still changes something.
        results += workers.run(
            task(
                database_url, repo, "ramp", weight_bp=1000 + n, actor="alice", hold_in_apply=False
            ),
            task(database_url, repo, "ramp", weight_bp=2000 + n, actor="bob", hold_in_apply=False),
        )

    wins = [value for kind, value in results if kind == "ok"]
    conflicts = [value for kind, value in results if kind == "conflict"]
    assert len(wins) + len(conflicts) == 2 * rounds, results
    assert len(wins) >= rounds  # in each round the first to write wins
    assert sorted(wins) == list(range(3, 3 + len(wins)))  # each success its own revision
    state = releases.release("greet", "development")
    assert state.revision == 2 + len(wins)
    history = releases.history("greet")
    assert len(history) == 2 + len(wins) == log_rows(releases)
    assert sorted(e.revision for e in history if e.action == "ramp") == sorted(wins)
    assert state.weight_bp == history[0].weight_bp


# -- two threads, two engines, in one process -----------------------------------------------


def test_two_threads_with_their_own_engines_forced_to_interleave_give_exactly_one_conflict(
    releases, repo, database_url, monkeypatch
):
    setup_releases(releases, repo, "v1")
    library = PromptLibrary(repo)
    barrier = threading.Barrier(2, timeout=WAIT_SECONDS)
    original = ReleaseService._apply

    def held(self, *args, **kwargs):
        barrier.wait()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ReleaseService, "_apply", held)
    databases = [Database(database_url), Database(database_url)]
    outcomes: list[Any] = [None, None]

    def act(index: int, ref: str) -> None:
        service = ReleaseService(databases[index])
        try:
            outcomes[index] = service.promote(
                library.get("greet", ref), "development", actor=f"thread-{index}"
            ).revision
        except Exception as exc:  # noqa: BLE001 - the test inspects whatever happened
            outcomes[index] = exc

    threads = [threading.Thread(target=act, args=(i, ref)) for i, ref in enumerate(["v2", "v3"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
    for database in databases:
        database.dispose()

    conflicts = [o for o in outcomes if isinstance(o, ReleaseConflict)]
    assert len(conflicts) == 1, outcomes
    assert [o for o in outcomes if not isinstance(o, Exception)] == [2]
    assert releases.release("greet", "development").revision == 2
    assert log_rows(releases) == 2


# -- the real command, twice at once -------------------------------------------------------


def test_two_promptctl_rollbacks_at_once_one_exits_1_with_the_conflict_message(
    workers, releases, repo, database_url
):
    setup_releases(releases, repo, "v1", "v2", "v3")
    args = ["--repo", str(repo), "--database-url", database_url, "rollback", "greet"]

    results = workers.run(
        {"action": "promptctl", "args": [*args, "--env", "development", "--actor", "alice"]},
        {"action": "promptctl", "args": [*args, "--env", "development", "--actor", "bob"]},
    )

    exits = [value for _, value in results]
    assert sorted(code for code, _, _ in exits) == [0, 1], exits
    winner = next(e for e in exits if e[0] == 0)
    loser = next(e for e in exits if e[0] == 1)
    v2 = PromptLibrary(repo).get("greet", "v2").digest[:12]
    assert winner[1] == f"greet: rolled back, v2 ({v2}) is stable in development\n"
    assert loser[1] == ""
    assert loser[2].splitlines() == [
        "error: the release of 'greet' in development was changed by another action at the "
        "same time; nothing was stored, look at 'promptctl status' and try again"
    ]
    state = releases.release("greet", "development")
    assert (state.stable.label, state.revision) == ("v2", 4)
    assert log_rows(releases) == 4
