"""Release actions on SQLite and PostgreSQL: each one's state and log row, and every refusal.

Every refused action is checked to leave the database exactly as it was: release state
(revision included), log rows and stored snapshots.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from promptctl.registry.errors import (
    EnvironmentExists,
    EnvironmentNotFound,
    LintFailed,
    PromptNotFound,
    ProtectedEnvironment,
    ReleaseError,
    ReleaseNotFound,
    RevisionMismatch,
    UsageError,
    VersionNotFound,
)
from promptctl.registry.prompts.library import PromptLibrary, PromptVersion
from promptctl.registry.releases.service import ReleaseService
from promptctl.registry.releases.values import LogEntry, ReleaseState, VersionRef
from promptctl.registry.store.database import Database
from promptctl.registry.store.models import ReleaseLog, VersionSnapshot

ACTOR = "alice <alice@example.com>"
TONE = "Be brief and kind.\n"


def greeting(number: int) -> str:
    """A clean prompt whose body differs per version."""
    return (
        "---\n"
        "description: Greet a user\n"
        "input:\n"
        "  name: {type: string}\n"
        "samples:\n"
        "  - {name: Ada}\n"
        "---\n"
        '{% include "partials/tone.j2" %}\n'
        "Hello {{ name }}, this is greeting number " + str(number) + ".\n"
    )


TRIAGE_CLEAN = (
    "---\ninput:\n  ticket: {type: string}\nsamples:\n  - {ticket: hi}\n---\n{{ ticket }}\n"
)
# Uses a variable it does not declare: a lint error.
TRIAGE_BROKEN = (
    "---\ninput:\n  ticket: {type: string}\nsamples:\n  - {ticket: hi}\n---\n"
    "{{ ticket }} for {{ team }}\n"
)


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}
COMMITS = [
    {
        "prompts/greet.prompt": greeting(1),
        "prompts/partials/tone.j2": TONE,
        "prompts/triage.prompt": TRIAGE_CLEAN,
    },
    {"prompts/greet.prompt": greeting(2)},
    {"prompts/greet.prompt": greeting(3), "prompts/triage.prompt": TRIAGE_BROKEN},
    {"prompts/greet.prompt": greeting(4)},
]


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """greet v1..v4 (clean, with a partial); triage v1 (clean) and v2 (fails lint).

    Built once with git (its own identity, no user config); tests only ever read it.
    """
    path = tmp_path_factory.mktemp("template") / "repo"
    path.mkdir()
    env = {**os.environ, **GIT_IDENTITY}

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    for number, files in enumerate(COMMITS, start=1):
        for relpath, text in files.items():
            (path / relpath).parent.mkdir(parents=True, exist_ok=True)
            (path / relpath).write_text(text, encoding="utf-8")
        git("add", "-A")
        git("commit", "-q", "-m", f"change {number}")
    return path


@pytest.fixture
def library(template_repo: Path) -> PromptLibrary:
    return PromptLibrary(template_repo)


@pytest.fixture
def releases(migrated_database_url: str) -> Iterator[ReleaseService]:
    database = Database(migrated_database_url)
    yield ReleaseService(database)
    database.dispose()


def greet(library: PromptLibrary, ref: str) -> PromptVersion:
    return library.get("greet", ref)


def label(ref: VersionRef | None) -> str | None:
    return ref.label if ref else None


def row(entry: LogEntry) -> dict[str, Any]:
    """The parts of a log row that an action decides."""
    return {
        "action": entry.action,
        "from": label(entry.from_version),
        "to": label(entry.to_version),
        "weight_bp": entry.weight_bp,
        "revision": entry.revision,
        "actor": entry.actor,
        "reason": entry.reason,
        "forced": entry.forced,
    }


def log_row(
    action: str,
    from_: str | None,
    to: str | None,
    *,
    revision: int,
    weight_bp: int | None = None,
    reason: str | None = None,
    forced: bool = False,
    actor: str = ACTOR,
) -> dict[str, Any]:
    return {
        "action": action,
        "from": from_,
        "to": to,
        "weight_bp": weight_bp,
        "revision": revision,
        "actor": actor,
        "reason": reason,
        "forced": forced,
    }


def last_row(releases: ReleaseService, prompt: str = "greet", env: str = "development") -> dict:
    return row(releases.history(prompt, env, limit=1)[0])


def released(state: ReleaseState | None) -> tuple[str, str | None, int, int] | None:
    """(stable, canary, weight, revision) of a release."""
    if state is None:
        return None
    return (state.stable.label, label(state.canary), state.weight_bp, state.revision)


def database_state(releases: ReleaseService) -> tuple[Any, ...]:
    """Everything an action could change: releases, log rows, snapshots, environments."""
    with releases.db.session() as session:
        log_rows = session.scalar(select(func.count()).select_from(ReleaseLog))
        snapshots = session.scalar(select(func.count()).select_from(VersionSnapshot))
    return (
        [s.to_json() for s in releases.status()],
        log_rows,
        snapshots,
        [e.to_json() for e in releases.environments()],
    )


@contextmanager
def refused(releases: ReleaseService, error: type[Exception], match: str) -> Iterator[None]:
    """Expect the block to raise `error` and to leave the database exactly as it was."""
    before = database_state(releases)
    with pytest.raises(error, match=match):
        yield
    assert database_state(releases) == before


def promote(releases: ReleaseService, version: PromptVersion, env: str = "development", **kw):
    return releases.promote(version, env, actor=ACTOR, **kw)


def with_canary(releases, library, weight_bp: int = 1250, env: str = "development") -> None:
    """v1 stable, v2 canary at `weight_bp` (revision 2)."""
    confirmed = env == "production"
    promote(releases, greet(library, "v1"), env, confirmed=confirmed)
    promote(releases, greet(library, "v2"), env, canary_bp=weight_bp, confirmed=confirmed)


# -- environments ------------------------------------------------------------------------


def test_default_environments_exist_and_production_is_protected(releases):
    environments = {e.name: e.protected for e in releases.environments()}

    assert environments == {"development": False, "staging": False, "production": True}


def test_create_environment_adds_it_and_refuses_a_duplicate(releases):
    created = releases.create_environment("qa", protected=True)

    assert (created.name, created.protected) == ("qa", True)
    assert [e.name for e in releases.environments()][-1] == "qa"
    with refused(releases, EnvironmentExists, "already exists"):
        releases.create_environment("qa")


def test_create_environment_refuses_an_invalid_name(releases):
    for name in ["a/b", "Bad Name", "x" * 65, ""]:
        with refused(releases, UsageError, f"invalid environment name '{name}'"):
            releases.create_environment(name)


def test_protect_and_unprotect_change_whether_confirmation_is_needed(releases, library):
    releases.set_protected("staging", True)
    with refused(releases, ProtectedEnvironment, "staging is protected"):
        promote(releases, greet(library, "v1"), "staging")

    releases.set_protected("production", False)
    state = promote(releases, greet(library, "v1"), "production")

    assert released(state) == ("v1", None, 0, 1)
    assert {e.name: e.protected for e in releases.environments()} == {
        "development": False,
        "staging": True,
        "production": False,
    }


def test_protecting_an_unknown_environment_is_refused(releases):
    with refused(releases, EnvironmentNotFound, "unknown environment 'qa'"):
        releases.set_protected("qa", True)


# -- promote -----------------------------------------------------------------------------


def test_promote_makes_a_version_stable_and_logs_it(releases, library):
    first = promote(releases, greet(library, "v1"), reason="first release")

    assert released(first) == ("v1", None, 0, 1)
    assert first.updated_by == ACTOR
    assert last_row(releases) == log_row("promote", None, "v1", revision=1, reason="first release")

    second = promote(releases, greet(library, "v2"))

    assert released(second) == ("v2", None, 0, 2)
    assert last_row(releases) == log_row("promote", "v1", "v2", revision=2)
    assert len(releases.history("greet")) == 2


def test_promote_snapshots_the_full_content_with_partials(releases, library):
    version = greet(library, "v2")
    promote(releases, version)

    stored = releases.snapshot("greet", version.digest)

    assert (
        stored.files()
        == version.files()
        == {
            "greet.prompt": greeting(2),
            "partials/tone.j2": TONE,
        }
    )
    assert (stored.number, stored.digest) == (2, version.digest)
    assert stored.render({"name": "Ada"}).text == version.render({"name": "Ada"}).text
    assert releases.released_version("greet", "development").digest == version.digest


def test_promote_with_canary_starts_it_at_the_weight(releases, library):
    promote(releases, greet(library, "v1"))

    state = promote(releases, greet(library, "v2"), canary_bp=1250, reason="try v2")

    assert released(state) == ("v1", "v2", 1250, 2)
    assert last_row(releases) == log_row(
        "canary_start", "v1", "v2", revision=2, weight_bp=1250, reason="try v2"
    )
    assert releases.released_version("greet", "development", "canary").number == 2


def test_promoting_a_stable_version_clears_the_canary(releases, library):
    with_canary(releases, library)

    state = promote(releases, greet(library, "v3"))

    assert released(state) == ("v3", None, 0, 3)
    assert last_row(releases) == log_row("promote", "v1", "v3", revision=3)


def test_promoting_another_canary_replaces_the_running_one(releases, library):
    with_canary(releases, library)

    state = promote(releases, greet(library, "v3"), canary_bp=100)

    assert released(state) == ("v1", "v3", 100, 3)
    assert last_row(releases) == log_row("canary_start", "v1", "v3", revision=3, weight_bp=100)


def test_promote_from_staging_to_production_promotes_what_is_stable_in_staging(releases, library):
    promote(releases, greet(library, "v1"), "production", confirmed=True)
    promote(releases, greet(library, "v2"), "staging")

    state = releases.promote_from("greet", "staging", "production", actor=ACTOR, confirmed=True)

    assert released(state) == ("v2", None, 0, 2)
    assert last_row(releases, env="production") == log_row(
        "promote", "v1", "v2", revision=2, reason="from staging"
    )
    assert released(releases.release("greet", "staging")) == ("v2", None, 0, 1)


def test_promote_from_can_start_a_canary(releases, library):
    promote(releases, greet(library, "v1"), "production", confirmed=True)
    promote(releases, greet(library, "v3"), "staging")

    state = releases.promote_from(
        "greet",
        "staging",
        "production",
        actor=ACTOR,
        canary_bp=500,
        reason="canary",
        confirmed=True,
    )

    assert released(state) == ("v1", "v3", 500, 2)
    assert last_row(releases, env="production") == log_row(
        "canary_start", "v1", "v3", revision=2, weight_bp=500, reason="canary"
    )


def test_promote_from_needs_a_release_in_another_environment(releases, library):
    promote(releases, greet(library, "v1"))

    with refused(releases, ReleaseNotFound, "'greet' has no release in staging"):
        releases.promote_from("greet", "staging", "development", actor=ACTOR)
    with refused(releases, UsageError, "same environment"):
        releases.promote_from("greet", "development", "development", actor=ACTOR)


# -- ramp, complete, abort ---------------------------------------------------------------


def test_ramp_changes_the_canary_weight(releases, library):
    with_canary(releases, library)

    state = releases.ramp("greet", "development", 5000, actor=ACTOR, reason="looks good")

    assert released(state) == ("v1", "v2", 5000, 3)
    assert last_row(releases) == log_row(
        "ramp", "v2", "v2", revision=3, weight_bp=5000, reason="looks good"
    )


def test_ramp_accepts_the_edges_of_the_range(releases, library):
    with_canary(releases, library)

    states = [
        releases.ramp("greet", "development", weight_bp, actor=ACTOR)
        for weight_bp in (0, 1, 9999, 10000)
    ]

    assert [released(s) for s in states] == [
        ("v1", "v2", 0, 3),
        ("v1", "v2", 1, 4),
        ("v1", "v2", 9999, 5),
        ("v1", "v2", 10000, 6),
    ]
    assert [e.weight_bp for e in releases.history("greet")[:4]] == [10000, 9999, 1, 0]


def test_complete_makes_the_canary_stable(releases, library):
    with_canary(releases, library)

    state = releases.complete("greet", "development", actor=ACTOR)

    assert released(state) == ("v2", None, 0, 3)
    assert last_row(releases) == log_row("complete", "v1", "v2", revision=3)


def test_abort_drops_the_canary(releases, library):
    with_canary(releases, library)

    state = releases.abort("greet", "development", actor=ACTOR, reason="errors up")

    assert released(state) == ("v1", None, 0, 3)
    assert last_row(releases) == log_row(
        "abort", "v2", "v1", revision=3, weight_bp=0, reason="errors up"
    )


# -- rollback ----------------------------------------------------------------------------


def test_rollback_with_canary_aborts_it(releases, library):
    with_canary(releases, library)

    state = releases.rollback("greet", "development", actor=ACTOR)

    assert released(state) == ("v1", None, 0, 3)
    assert last_row(releases) == log_row("rollback_canary", "v2", "v1", revision=3, weight_bp=0)


def test_rollback_without_canary_restores_the_previous_stable(releases, library):
    promote(releases, greet(library, "v1"))
    promote(releases, greet(library, "v2"))

    state = releases.rollback("greet", "development", actor=ACTOR, reason="bad answers")

    assert released(state) == ("v1", None, 0, 3)
    assert last_row(releases) == log_row("rollback", "v2", "v1", revision=3, reason="bad answers")


def test_rollback_twice_goes_back_two_releases(releases, library):
    for ref in ("v1", "v2", "v3"):
        promote(releases, greet(library, ref))

    first = releases.rollback("greet", "development", actor=ACTOR)
    second = releases.rollback("greet", "development", actor=ACTOR)

    assert released(first) == ("v2", None, 0, 4)
    assert released(second) == ("v1", None, 0, 5)
    assert last_row(releases) == log_row("rollback", "v2", "v1", revision=5)
    with refused(releases, ReleaseError, "nothing to roll back to"):
        releases.rollback("greet", "development", actor=ACTOR)


def test_rollback_after_a_completed_canary_restores_the_stable_before_it(releases, library):
    with_canary(releases, library)
    releases.complete("greet", "development", actor=ACTOR)

    state = releases.rollback("greet", "development", actor=ACTOR)

    assert released(state) == ("v1", None, 0, 4)


def test_rollback_to_a_version_makes_it_stable(releases, library):
    for ref in ("v1", "v2", "v3"):
        promote(releases, greet(library, ref))

    state = releases.rollback("greet", "development", actor=ACTOR, to=greet(library, "v1"))

    assert released(state) == ("v1", None, 0, 4)
    assert last_row(releases) == log_row("rollback_to", "v3", "v1", revision=4)


def test_rollback_after_rollback_to_returns_to_what_was_stable_before_it(releases, library):
    for ref in ("v1", "v2", "v3"):
        promote(releases, greet(library, ref))
    releases.rollback("greet", "development", actor=ACTOR, to=greet(library, "v1"))

    state = releases.rollback("greet", "development", actor=ACTOR)

    assert released(state) == ("v3", None, 0, 5)


def test_rollback_to_a_version_never_stable_there_is_refused_and_changes_nothing(
    releases, library
):
    promote(releases, greet(library, "v2"))

    with refused(releases, ReleaseError, "v1 of 'greet' was never stable in development"):
        releases.rollback("greet", "development", actor=ACTOR, to=greet(library, "v1"))


def test_rollback_to_an_earlier_stable_version_restores_it(releases, library):
    promote(releases, greet(library, "v1"))
    promote(releases, greet(library, "v2"))
    promote(releases, greet(library, "v3"))

    state = releases.rollback("greet", "development", actor=ACTOR, to=greet(library, "v1"))

    assert released(state) == ("v1", None, 0, 4)
    assert releases.snapshot("greet", greet(library, "v1").digest).files()["greet.prompt"] == (
        greeting(1)
    )


def test_rollback_to_the_stable_version_is_refused(releases, library):
    promote(releases, greet(library, "v1"))
    promote(releases, greet(library, "v2"))

    with refused(releases, ReleaseError, "v2 is already stable"):
        releases.rollback("greet", "development", actor=ACTOR, to=greet(library, "v2"))


def test_rollback_of_the_first_release_is_refused(releases, library):
    promote(releases, greet(library, "v1"))

    with refused(releases, ReleaseError, "nothing to roll back to.*first release"):
        releases.rollback("greet", "development", actor=ACTOR)


def test_rollback_without_any_release_is_refused(releases):
    with refused(releases, ReleaseNotFound, "'greet' has no release in development"):
        releases.rollback("greet", "development", actor=ACTOR)


# -- bad input ---------------------------------------------------------------------------


def test_an_unknown_prompt_or_version_is_refused_by_the_library(releases, library):
    with refused(releases, PromptNotFound, "unknown prompt 'nope'"):
        promote(releases, library.get("nope", "HEAD"))
    with refused(releases, VersionNotFound, "has no version 'v9'.*v1..v4"):
        promote(releases, greet(library, "v9"))


def test_acting_on_a_prompt_without_a_release_is_refused(releases, library):
    promote(releases, greet(library, "v1"))
    actions = [
        lambda: releases.ramp("nope", "development", 100, actor=ACTOR),
        lambda: releases.complete("nope", "development", actor=ACTOR),
        lambda: releases.abort("nope", "development", actor=ACTOR),
        lambda: releases.rollback("nope", "development", actor=ACTOR),
        lambda: releases.released_version("nope", "development"),
    ]

    for action in actions:
        with refused(releases, ReleaseNotFound, "'nope' has no release in development"):
            action()


def test_an_unknown_environment_is_refused_with_the_known_ones(releases, library):
    promote(releases, greet(library, "v1"))
    v2 = greet(library, "v2")
    actions = [
        lambda: releases.promote(v2, "qa", actor=ACTOR),
        lambda: releases.ramp("greet", "qa", 100, actor=ACTOR),
        lambda: releases.complete("greet", "qa", actor=ACTOR),
        lambda: releases.abort("greet", "qa", actor=ACTOR),
        lambda: releases.rollback("greet", "qa", actor=ACTOR),
        lambda: releases.promote_from("greet", "development", "qa", actor=ACTOR),
        lambda: releases.status("greet", "qa"),
        lambda: releases.history("greet", "qa"),
    ]

    for action in actions:
        with refused(
            releases,
            EnvironmentNotFound,
            r"unknown environment 'qa' \(environments: development, staging, production\)",
        ):
            action()


def test_a_weight_outside_0_to_100_percent_is_refused(releases, library):
    with_canary(releases, library)

    for weight_bp in (-1, 10001):
        with refused(releases, UsageError, "outside 0-100 percent"):
            releases.ramp("greet", "development", weight_bp, actor=ACTOR)
        with refused(releases, UsageError, "outside 0-100 percent"):
            promote(releases, greet(library, "v3"), canary_bp=weight_bp)


def test_ramping_to_the_current_weight_changes_nothing_and_logs_nothing(releases, library):
    with_canary(releases, library, weight_bp=1250)
    before = releases.release("greet", "development")
    rows = len(releases.history("greet"))

    after = releases.ramp("greet", "development", 1250, actor=ACTOR)

    assert after == before
    assert len(releases.history("greet")) == rows


def test_ramping_a_protected_canary_to_its_weight_needs_no_confirmation(releases, library):
    with_canary(releases, library, env="production", weight_bp=1250)
    before = releases.release("greet", "production")

    assert releases.ramp("greet", "production", 1250, actor=ACTOR) == before


def test_canary_actions_without_a_canary_are_refused(releases, library):
    promote(releases, greet(library, "v1"))
    actions = {
        "complete": lambda: releases.complete("greet", "development", actor=ACTOR),
        "change its weight": lambda: releases.ramp("greet", "development", 500, actor=ACTOR),
        "abort": lambda: releases.abort("greet", "development", actor=ACTOR),
    }

    for what, action in actions.items():
        with refused(releases, ReleaseError, f"'greet' has no canary in development to {what}"):
            action()


def test_promoting_the_version_already_stable_is_refused(releases, library):
    promote(releases, greet(library, "v1"))

    with refused(releases, ReleaseError, "v1 of 'greet' is already stable in development"):
        promote(releases, greet(library, "v1"))


def test_a_canary_needs_a_stable_version_and_must_differ_from_it_and_the_running_one(
    releases, library
):
    with refused(releases, ReleaseError, "nothing stable in development"):
        promote(releases, greet(library, "v1"), canary_bp=100)

    with_canary(releases, library)

    with refused(releases, ReleaseError, "v1 is already stable in development; a canary must"):
        promote(releases, greet(library, "v1"), canary_bp=100)
    with refused(releases, ReleaseError, "v2 is already the canary"):
        promote(releases, greet(library, "v2"), canary_bp=5000)


def test_a_version_that_fails_lint_is_refused(releases, library):
    promote(releases, library.get("triage", "v1"))

    with refused(releases, LintFailed, r"triage@v2 fails lint: .*'team'.*--force"):
        promote(releases, library.get("triage", "v2"))


def test_a_version_that_fails_lint_is_promoted_with_force_and_logged_as_forced(releases, library):
    promote(releases, library.get("triage", "v1"))

    state = promote(releases, library.get("triage", "v2"), force=True, reason="hotfix")

    assert released(state) == ("v2", None, 0, 2)
    assert last_row(releases, "triage") == log_row(
        "promote", "v1", "v2", revision=2, reason="hotfix", forced=True
    )


def test_force_on_a_clean_version_is_not_logged_as_forced(releases, library):
    promote(releases, greet(library, "v1"), force=True)

    assert last_row(releases)["forced"] is False


def test_promoting_a_forced_version_onward_keeps_it_marked_forced(releases, library):
    promote(releases, library.get("triage", "v2"), "staging", force=True)

    releases.promote_from("triage", "staging", "development", actor=ACTOR)

    assert last_row(releases, "triage")["forced"] is True


# -- protected environments --------------------------------------------------------------


def test_promote_into_a_protected_environment_needs_confirmation(releases, library):
    with refused(releases, ProtectedEnvironment, "production is protected"):
        promote(releases, greet(library, "v1"), "production")

    state = promote(releases, greet(library, "v1"), "production", confirmed=True)

    assert released(state) == ("v1", None, 0, 1)


def test_changes_to_a_protected_environment_need_confirmation(releases, library):
    with_canary(releases, library, env="production")
    promote(releases, greet(library, "v4"), "staging")
    v3 = greet(library, "v3")
    actions = [
        lambda: releases.promote(v3, "production", actor=ACTOR, canary_bp=10),
        lambda: releases.promote(v3, "production", actor=ACTOR),
        lambda: releases.ramp("greet", "production", 5000, actor=ACTOR),
        lambda: releases.complete("greet", "production", actor=ACTOR),
        lambda: releases.promote_from("greet", "staging", "production", actor=ACTOR),
    ]

    for action in actions:
        with refused(releases, ProtectedEnvironment, "production is protected"):
            action()


def test_abort_in_a_protected_environment_needs_no_confirmation(releases, library):
    with_canary(releases, library, env="production")

    state = releases.abort("greet", "production", actor=ACTOR)

    assert released(state) == ("v1", None, 0, 3)


def test_rollback_in_a_protected_environment_needs_no_confirmation(releases, library):
    with_canary(releases, library, env="production")
    releases.complete("greet", "production", actor=ACTOR, confirmed=True)

    state = releases.rollback("greet", "production", actor=ACTOR)

    assert released(state) == ("v1", None, 0, 4)
    assert last_row(releases, env="production") == log_row("rollback", "v2", "v1", revision=4)


# -- revisions, reads --------------------------------------------------------------------


def test_an_action_with_a_stale_expected_revision_is_refused(releases, library):
    with_canary(releases, library)

    with refused(releases, RevisionMismatch, "at revision 2, not 1"):
        releases.ramp("greet", "development", 5000, actor=ACTOR, expected_revision=1)
    state = releases.ramp("greet", "development", 5000, actor=ACTOR, expected_revision=2)

    assert released(state) == ("v1", "v2", 5000, 3)


def test_an_action_returns_the_state_it_wrote_even_when_a_rival_commits_right_after(
    releases, library, database_url
):
    with_canary(releases, library)
    rival = Database(database_url)
    wrote_log: list[bool] = []
    rival_revisions: list[int] = []

    def note_log_row(session, _context):
        wrote_log.append(any(isinstance(o, ReleaseLog) for o in session.new))

    def rival_ramps_once(_session):
        if any(wrote_log) and not rival_revisions:
            rival_state = ReleaseService(rival).ramp("greet", "development", 7000, actor="bob")
            rival_revisions.append(rival_state.revision)

    event.listen(releases.db.sessions, "after_flush", note_log_row)
    event.listen(releases.db.sessions, "after_commit", rival_ramps_once)
    try:
        state = releases.ramp("greet", "development", 5000, actor=ACTOR)
    finally:
        event.remove(releases.db.sessions, "after_flush", note_log_row)
        event.remove(releases.db.sessions, "after_commit", rival_ramps_once)
        rival.dispose()

    assert rival_revisions == [4]
    assert released(state) == ("v1", "v2", 5000, 3)
    assert released(releases.release("greet", "development")) == ("v1", "v2", 7000, 4)


def test_every_action_is_one_log_row_and_the_revision_counts_them(releases, library):
    with_canary(releases, library)
    releases.ramp("greet", "development", 5000, actor=ACTOR)
    releases.complete("greet", "development", actor=ACTOR)
    promote(releases, greet(library, "v3"), canary_bp=100)
    releases.abort("greet", "development", actor=ACTOR)
    releases.rollback("greet", "development", actor="bob")

    history = releases.history("greet", "development")

    assert [e.action for e in history] == [
        "rollback",
        "abort",
        "canary_start",
        "complete",
        "ramp",
        "canary_start",
        "promote",
    ]
    assert [e.revision for e in history] == [7, 6, 5, 4, 3, 2, 1]
    assert released(releases.release("greet", "development")) == ("v1", None, 0, 7)
    assert releases.release("greet", "development").updated_by == "bob"


def test_status_and_history_filter_by_prompt_and_environment(releases, library):
    promote(releases, greet(library, "v1"))
    promote(releases, greet(library, "v2"), "staging")
    promote(releases, library.get("triage", "v1"))

    everything = [(s.prompt, s.environment) for s in releases.status()]

    assert everything == [
        ("greet", "development"),
        ("greet", "staging"),
        ("triage", "development"),
    ]
    assert [s.environment for s in releases.status("greet")] == ["development", "staging"]
    assert [s.prompt for s in releases.status(environment="development")] == ["greet", "triage"]
    assert releases.release("greet", "production") is None
    assert [e.environment for e in releases.history("greet")] == ["staging", "development"]
    assert len(releases.history("greet", limit=1)) == 1


def test_states_and_log_rows_serialise_to_json(releases, library):
    with_canary(releases, library)

    state = releases.release("greet", "development").to_json()
    entry = releases.history("greet", limit=1)[0].to_json()

    assert state["stable"]["label"] == "v1"
    assert {k: state["canary"][k] for k in ("digest", "version", "label")} == {
        "digest": greet(library, "v2").digest,
        "version": 2,
        "label": "v2",
    }
    assert (state["weight_bp"], state["weight"], state["revision"]) == (1250, 12.5, 2)
    assert (entry["action"], entry["from"]["label"], entry["to"]["label"]) == (
        "canary_start",
        "v1",
        "v2",
    )
    assert (entry["from_weight_bp"], entry["to_weight_bp"], entry["to_weight"]) == (0, 1250, 12.5)
    assert entry["created_at"].endswith("+00:00")


def test_snapshot_of_an_unreleased_version_is_not_found(releases, library):
    with pytest.raises(VersionNotFound, match="no snapshot in the database"):
        releases.snapshot("greet", greet(library, "v1").digest)
