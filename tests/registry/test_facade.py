"""The facade: each service built once, release actions that refresh the serving cache
themselves, and versions found by reference in git or, when git cannot say, among the
released ones."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator

import pytest

from promptctl.registry.core import Registry, Settings
from promptctl.registry.errors import OtherEnvironment, VersionNotFound
from promptctl.registry.prompts.promptversion import version_from_files
from promptctl.registry.releases.actions import Promote, Rollback
from promptctl.registry.releases.lookup import match_released

NAME = "greet"
ENV = "staging"


def greeting(number: int) -> str:
    return f"---\ninput:\n  name: {{type: string}}\n---\nHello {{{{ name }}}}, number {number}.\n"


@pytest.fixture
def repo(git_repo):
    for number in (1, 2):
        git_repo.commit(f"greeting {number}", {f"prompts/{NAME}.prompt": greeting(number)})
    return git_repo


@pytest.fixture
def registry(repo, migrated_database_url) -> Iterator[Registry]:
    registry = Registry(Settings(repo=repo.path, database_url=migrated_database_url))
    yield registry
    registry.close()


def test_each_service_is_built_once_and_they_share_the_serving_cache(registry):
    assert registry.releases is registry.releases
    assert registry.metrics.cache is registry.serving
    assert registry.serving.releases is registry.releases
    assert registry.serving.tokens_service is registry.tokens


def test_a_release_action_shows_at_once_in_the_serving_cache(registry):
    registry.serving.load_all()
    registry.perform(Promote(prompt=NAME, environment=ENV, ref="v1", actor="test"))
    assert registry.serving.resolve(NAME, ENV).version.label == "v1"
    registry.perform(Promote(prompt=NAME, environment=ENV, ref="v2", actor="test"))
    assert registry.serving.resolve(NAME, ENV).version.label == "v2"
    registry.perform(Rollback(prompt=NAME, environment=ENV, actor="test"))
    assert registry.serving.resolve(NAME, ENV).version.label == "v1"
    registry.create_environment("qa", protected=True)
    assert registry.serving.is_protected("qa")


def test_a_registry_that_does_not_serve_builds_no_serving_cache(registry):
    registry.perform(Promote(prompt=NAME, environment=ENV, ref="v1", actor="test"))
    assert "serving" not in registry.__dict__


@pytest.mark.parametrize("serving", [False, True], ids=["from the database", "from memory"])
def test_a_released_version_is_found_when_git_cannot_be_read(repo, registry, serving):
    promoted = registry.perform(Promote(prompt=NAME, environment=ENV, ref="v1", actor="test"))
    digest = promoted.stable.digest
    shutil.rmtree(repo.path / ".git")
    blind = Registry(registry.settings)
    if serving:
        blind.serving.load_all()
    try:
        for ref in ("v1", digest[:7], digest.upper()[:12], digest):
            assert blind.find_version(NAME, ref).digest == digest, ref
        for ref in ("v2", "HEAD", "main", "1a2b3c4"):
            with pytest.raises(VersionNotFound):
                blind.find_version(NAME, ref)
    finally:
        blind.close()


def test_a_viewer_limited_to_an_environment_is_shown_that_environment_only(registry):
    for env in ("staging", "production"):
        action = Promote(prompt=NAME, environment=env, ref="v1", actor=f"{env}-lead")
        registry.perform(dataclasses.replace(action, confirmed=True))
    registry.serving.load_all()
    _, staging = registry.tokens.create("staging-reader", "read", "staging")
    _, admin = registry.tokens.create("admin", "admin", "staging")  # admin: never limited
    assert {s.environment for s in registry.status(viewer=staging)} == {"staging"}
    assert {e.environment for e in registry.history(NAME, viewer=staging)} == {"staging"}
    assert [e.name for e in registry.environments(viewer=staging)] == ["staging"]
    assert [list(p["releases"]) for p in registry.catalog(viewer=staging)] == [["staging"]]
    for look in (
        lambda: registry.status(NAME, "production", viewer=staging),
        lambda: registry.history(NAME, "production", viewer=staging),
        lambda: registry.metrics_summary(NAME, "production", viewer=staging),
    ):
        with pytest.raises(OtherEnvironment, match="limited to staging, not production"):
            look()
    assert {s.environment for s in registry.status(viewer=admin)} == {"staging", "production"}
    assert len(registry.environments(viewer=admin)) == 3


@pytest.mark.parametrize("serving", [False, True], ids=["from the database", "from memory"])
def test_a_viewer_finds_released_versions_only_where_it_sees(repo, registry, serving):
    registry.perform(Promote(prompt=NAME, environment="staging", ref="v1", actor="test"))
    production = Promote(prompt=NAME, environment="production", ref="v2", actor="t")
    v2 = registry.perform(dataclasses.replace(production, confirmed=True)).stable.digest
    _, staging = registry.tokens.create("staging-reader", "read", "staging")
    shutil.rmtree(repo.path / ".git")
    blind = Registry(registry.settings)
    if serving:
        blind.serving.load_all()
    try:
        assert blind.find_version(NAME, "v1", viewer=staging).number == 1
        assert blind.find_version(NAME, v2[:12]).digest == v2
        with pytest.raises(VersionNotFound):
            blind.find_version(NAME, v2[:12], viewer=staging)
    finally:
        blind.close()


def released(number: int, digest: str):
    return version_from_files(
        NAME,
        digest=digest,
        root="prompts",
        relpath=f"{NAME}.prompt",
        files={f"{NAME}.prompt": greeting(number)},
        source="release snapshot",
        number=number,
    )


def test_released_versions_follow_the_library_reference_rules():
    versions = [released(1, "abcdef0" + "1" * 57), released(2, "abcdef0" + "2" * 57)]
    assert match_released(NAME, "v2", versions) is versions[1]
    assert match_released(NAME, "abcdef01", versions) is versions[0]
    assert match_released(NAME, "abcdef", versions) is None  # shorter than 7: a git revision
    assert match_released(NAME, "main", versions) is None
    with pytest.raises(VersionNotFound, match="ambiguous digest prefix: v1, v2"):
        match_released(NAME, "abcdef0", versions)
