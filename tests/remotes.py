"""Real remotes on disk for the tests of a server's clone following its remote.

Importable as `remotes` from any test module (pytest puts tests/ on sys.path). `Remotes`
builds, in a test's tmp_path, a bare repository (`origin.git`, made with `git init --bare`)
that a laptop clone pushes to with the `git` command, and clones of it that a server
reads. Every git command runs with a fixed identity; HOME and git config are isolated by
the root conftest's autouse fixture.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}
NAME = "translate"
RELPATH = f"prompts/{NAME}.prompt"


def translate(number: int) -> str:
    """A clean text prompt whose body differs per version."""
    return (
        "---\n"
        "description: Translate a text\n"
        "model: gpt-4o-mini\n"
        "input:\n"
        "  text: {type: string}\n"
        "samples:\n"
        "  - {text: Hello}\n"
        "---\n"
        f"Translate into French (style {number}):\n{{{{ text }}}}\n"
    )


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


class Clone:
    """A clone with a working tree, driven with the `git` command."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str) -> str:
        return git(self.path, *args)

    def commit(self, message: str, files: dict[str, str]) -> str:
        """Write `files`, commit them all; return the new commit's sha."""
        for relpath, text in files.items():
            target = self.path / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def version(self, number: int, *, push: bool = True) -> str:
        """Commit `translate` vN (and push it to origin); return the commit's sha."""
        sha = self.commit(f"translate {number}", {RELPATH: translate(number)})
        if push:
            self.git("push", "-q", "origin", "HEAD")
        return sha


class Remotes:
    """origin.git (bare), a laptop clone that pushes to it, and clones servers read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.origin = root / "origin.git"
        git(root, "init", "-q", "--bare", "-b", "main", str(self.origin))
        self.laptop = self.clone("laptop")

    def clone(self, name: str, *, bare: bool = False) -> Clone:
        """A clone of origin (with `git clone`, so its `origin` remote is set)."""
        path = self.root / name
        git(self.root, "clone", "-q", *(["--bare"] if bare else []), str(self.origin), str(path))
        return Clone(path)

    def with_versions(self, count: int) -> Remotes:
        """Push `translate` v1..v{count} from the laptop."""
        for number in range(1, count + 1):
            self.laptop.version(number)
        return self
