"""Fallbacks that never stop an application: missing or broken bundles, unusable cache
directories, broken cache files, and which of the disk cache and the bundle serves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from client_kit import CANARY_PROMPT, ENV, ServerProcess, key_for

from promptctl.client import AsyncPromptClient, PromptClient, PromptUnavailable

STABLE_PROMPT = "translate"


def edit_bundle(path: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


# -- bundles -----------------------------------------------------------------------------


def test_a_client_whose_bundle_does_not_exist_serves_from_the_server_with_one_warning(
    shared_server: ServerProcess, tmp_path: Path, warnings_of: Callable[[], list[str]]
) -> None:
    missing = tmp_path / "prompts.bundle.json"
    with PromptClient(shared_server.url, environment=ENV, bundle=missing, timeout=10) as prompts:
        prompt = prompts.get(STABLE_PROMPT)

    assert (prompt.source, prompt.stale, prompt.version) == ("server", False, 1)
    (warning,) = warnings_of()
    assert str(missing) in warning
    assert "does not exist" in warning


def test_an_async_client_whose_bundle_does_not_exist_serves_from_the_server(
    shared_server: ServerProcess, tmp_path: Path, warnings_of: Callable[[], list[str]]
) -> None:
    missing = tmp_path / "prompts.bundle.json"

    async def main() -> Any:
        async with AsyncPromptClient(
            shared_server.url, environment=ENV, bundle=missing, timeout=10
        ) as prompts:
            return await prompts.get(STABLE_PROMPT)

    prompt = asyncio.run(main())

    assert (prompt.source, prompt.version) == ("server", 1)
    (warning,) = warnings_of()
    assert str(missing) in warning


BROKEN_BUNDLES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated JSON": (
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
        "truncated or not JSON",
    ),
    "garbage bytes": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff"), "not UTF-8"),
    "an empty file": (lambda p: p.write_bytes(b""), "truncated or not JSON"),
    "a JSON list": (lambda p: p.write_text("[1, 2, 3]"), "not a promptctl bundle"),
    "another format": (
        lambda p: edit_bundle(p, lambda d: d.update(format="promptctl-bundle/9")),
        "format 'promptctl-bundle/9'",
    ),
    "another environment": (
        lambda p: edit_bundle(p, lambda d: d.update(environment="staging")),
        "a bundle for 'staging', the client is for 'production'",
    ),
    "releases of the wrong shape": (
        lambda p: edit_bundle(p, lambda d: d.update(releases=["support/triage"])),
        "wrong shape",
    ),
    "a directory": (lambda p: (p.unlink(), p.mkdir()), "directory"),
}


@pytest.mark.parametrize("kind", list(BROKEN_BUNDLES))
def test_a_broken_bundle_is_one_warning_naming_the_file_and_the_client_works(
    shared_server: ServerProcess,
    bundle: Path,
    down_url: str,
    tmp_path: Path,
    warnings_of: Callable[[], list[str]],
    kind: str,
) -> None:
    breakage, what = BROKEN_BUNDLES[kind]
    cache = tmp_path / "prompt-cache"
    with PromptClient(shared_server.url, environment=ENV, cache_dir=cache, timeout=10) as earlier:
        earlier.get(STABLE_PROMPT)
    breakage(bundle)

    with PromptClient(shared_server.url, environment=ENV, bundle=bundle, timeout=10) as live:
        from_server = live.get(STABLE_PROMPT)
    with PromptClient(down_url, environment=ENV, bundle=bundle, cache_dir=cache) as offline:
        from_disk = offline.get(STABLE_PROMPT)
        with pytest.raises(PromptUnavailable):
            offline.get(CANARY_PROMPT)  # not cached, and the bundle is no use

    assert from_server.source == "server"
    assert (from_disk.source, from_disk.digest) == ("disk", from_server.digest)
    about_bundle = [w for w in warnings_of() if str(bundle) in w]
    assert len(about_bundle) == 2, about_bundle  # one per client built with it
    assert all(what in w for w in about_bundle), about_bundle


def test_releases_of_the_wrong_shape_in_a_bundle_are_one_warning_and_the_rest_serve(
    bundle: Path, down_url: str, warnings_of: Callable[[], list[str]]
) -> None:
    def damage(data: dict[str, Any]) -> None:
        data["releases"][CANARY_PROMPT].pop("stable")
        data["releases"]["support/reply"] = "not a release"

    edit_bundle(bundle, damage)

    with PromptClient(down_url, environment=ENV, bundle=bundle) as prompts:
        served = prompts.get(STABLE_PROMPT)
        with pytest.raises(PromptUnavailable):
            prompts.get(CANARY_PROMPT)

    assert (served.source, served.version) == ("bundle", 1)
    (warning,) = [w for w in warnings_of() if str(bundle) in w]
    assert f"{CANARY_PROMPT} (missing 'stable')" in warning
    assert "support/reply (wrong shape" in warning


# -- cache directories -------------------------------------------------------------------

UNUSABLE_CACHE_DIRS: dict[str, Callable[[Path], Path]] = {
    "a file where the directory should be": lambda tmp: (tmp / "cache").touch() or tmp / "cache",
    "a directory below a file": lambda tmp: (tmp / "file").touch() or tmp / "file" / "cache",
}


@pytest.mark.parametrize("kind", list(UNUSABLE_CACHE_DIRS))
def test_an_unusable_cache_dir_is_one_warning_and_the_client_works_without_it(
    shared_server: ServerProcess,
    tmp_path: Path,
    warnings_of: Callable[[], list[str]],
    kind: str,
) -> None:
    cache = UNUSABLE_CACHE_DIRS[kind](tmp_path)
    with PromptClient(shared_server.url, environment=ENV, cache_dir=cache, timeout=10) as prompts:
        prompt = prompts.get(STABLE_PROMPT)
        with prompts.track(prompt):
            pass
        delivered = prompts.flush()

    assert (prompt.source, delivered) == ("server", True)
    (warning,) = warnings_of()
    assert str(cache) in warning
    assert "going on without a disk cache" in warning


def test_a_broken_disk_cache_file_is_skipped_with_a_warning_naming_it(
    shared_server: ServerProcess,
    bundle: Path,
    down_url: str,
    tmp_path: Path,
    warnings_of: Callable[[], list[str]],
) -> None:
    cache = tmp_path / "prompt-cache"
    with PromptClient(shared_server.url, environment=ENV, cache_dir=cache, timeout=10) as earlier:
        earlier.get(STABLE_PROMPT)
        earlier.get("support/reply")
    (broken,) = (cache / ENV).glob(f"{STABLE_PROMPT}.json")
    broken.write_text(broken.read_text()[:100])
    (cache / ENV / "support__reply.json").write_text(json.dumps({"release": [1]}))

    with PromptClient(down_url, environment=ENV, cache_dir=cache, bundle=bundle) as restarted:
        from_bundle = restarted.get(STABLE_PROMPT)
        for _ in range(3):
            restarted.get(STABLE_PROMPT)
    with (
        PromptClient(down_url, environment=ENV, cache_dir=cache) as without_bundle,
        pytest.raises(PromptUnavailable),
    ):
        without_bundle.get("support/reply")

    assert from_bundle.source == "bundle"
    warnings = warnings_of()
    assert len([w for w in warnings if str(broken) in w]) == 1, warnings
    assert "truncated or not JSON" in next(w for w in warnings if str(broken) in w)
    assert any("support__reply.json is broken (wrong shape" in w for w in warnings), warnings


# -- which of the disk cache and the bundle serves ---------------------------------------


def cache_of(server: ServerProcess, env: str, cache: Path) -> None:
    """Run a client that caches every release it gets, as an earlier run of an app does."""
    with PromptClient(server.url, environment=env, cache_dir=cache, timeout=10) as earlier:
        earlier.get(CANARY_PROMPT)


def test_a_bundle_newer_than_the_disk_cache_wins_over_it(
    shared_server: ServerProcess, fresh_env: str, down_url: str, tmp_path: Path
) -> None:
    release = shared_server.wait_for_release(CANARY_PROMPT, fresh_env, revision=2)
    key = key_for(CANARY_PROMPT, release, "canary")
    cache = tmp_path / "prompt-cache"
    cache_of(shared_server, fresh_env, cache)  # saw the 30 % canary (revision 2)
    shared_server.promptctl("canary", CANARY_PROMPT, "--env", fresh_env, "--abort")
    shared_server.wait_for_release(CANARY_PROMPT, fresh_env, revision=3)
    bundle = tmp_path / "after-rollback.bundle.json"
    shared_server.promptctl("bundle", "--env", fresh_env, "-o", str(bundle))

    with PromptClient(down_url, environment=fresh_env, cache_dir=cache, bundle=bundle) as restarted:
        prompt = restarted.get(CANARY_PROMPT, key=key)

    assert (prompt.source, prompt.variant, prompt.version) == ("bundle", "stable", 1)


def test_a_disk_cache_newer_than_the_bundle_wins_over_it_in_an_async_client(
    shared_server: ServerProcess, fresh_env: str, down_url: str, tmp_path: Path
) -> None:
    release = shared_server.wait_for_release(CANARY_PROMPT, fresh_env, revision=2)
    key = key_for(CANARY_PROMPT, release, "canary")
    old_bundle = tmp_path / "before-canary.bundle.json"
    shared_server.promptctl("canary", CANARY_PROMPT, "--env", fresh_env, "--abort")
    shared_server.wait_for_release(CANARY_PROMPT, fresh_env, revision=3)
    shared_server.promptctl("bundle", "--env", fresh_env, "-o", str(old_bundle))
    shared_server.start_canary(fresh_env)
    shared_server.wait_for_release(CANARY_PROMPT, fresh_env, revision=4)
    cache = tmp_path / "prompt-cache"
    cache_of(shared_server, fresh_env, cache)

    async def main() -> Any:
        async with AsyncPromptClient(
            down_url, environment=fresh_env, cache_dir=cache, bundle=old_bundle
        ) as restarted:
            return await restarted.get(CANARY_PROMPT, key=key)

    prompt = asyncio.run(main())

    assert (prompt.source, prompt.variant, prompt.version) == ("disk", "canary", 2)


def test_a_bundle_without_revisions_counts_as_older_than_the_disk_cache(
    shared_server: ServerProcess, fresh_env: str, down_url: str, tmp_path: Path
) -> None:
    cache = tmp_path / "prompt-cache"
    cache_of(shared_server, fresh_env, cache)  # revision 2: the canary
    shared_server.promptctl("canary", CANARY_PROMPT, "--env", fresh_env, "--abort")
    shared_server.wait_for_release(CANARY_PROMPT, fresh_env, revision=3)
    bundle = tmp_path / "hand-made.bundle.json"
    shared_server.promptctl("bundle", "--env", fresh_env, "-o", str(bundle))
    edit_bundle(
        bundle,
        lambda data: [(r.pop("revision"), r.pop("updated_at")) for r in data["releases"].values()],
    )

    with PromptClient(down_url, environment=fresh_env, cache_dir=cache, bundle=bundle) as restarted:
        prompt = restarted.get(CANARY_PROMPT)

    assert prompt.source == "disk"
