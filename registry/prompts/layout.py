"""Where prompts live in a repository: the root folder, the file-name pattern, the branch.

Read from `promptctl.toml` at the repository root, overridden by `PROMPTCTL_ROOT`,
`PROMPTCTL_PATTERN` and `PROMPTCTL_BRANCH`, overridden in turn by explicit options, so a
team can adopt an existing prompt repository without moving a file.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from promptctl.registry.errors import ConfigError, InvalidConfigFile, InvalidPromptName

CONFIG_FILE = "promptctl.toml"
NAME_RE = r"[a-z0-9][a-z0-9_.-]*(?:/[a-z0-9][a-z0-9_.-]*)*"
_NAME_FULL = re.compile(NAME_RE + r"\Z")
_KEYS = ("root", "pattern", "branch")


@dataclass(frozen=True)
class Layout:
    """How prompt names map to paths in the repository."""

    root: str = "prompts"
    pattern: str = "{name}.prompt"
    branch: str = "main"

    def __post_init__(self) -> None:
        if self.pattern.count("{name}") != 1:
            raise ConfigError(f"pattern '{self.pattern}' must contain '{{name}}' exactly once")
        if self.pattern.startswith("/") or ".." in self.pattern.split("/"):
            raise ConfigError(f"pattern '{self.pattern}' must be a relative path")
        root = self.root.strip("/")
        root = "" if root == "." else root
        if ".." in root.split("/"):
            raise ConfigError(f"root '{self.root}' must stay inside the repository")
        object.__setattr__(self, "root", root)
        before, after = self.pattern.split("{name}")
        regex = re.compile(re.escape(before) + f"(?P<name>{NAME_RE})" + re.escape(after) + r"\Z")
        object.__setattr__(self, "_regex", regex)

    def name_of(self, relpath: str) -> str | None:
        """Return the prompt name for a path below the root, or None if it is not a prompt."""
        match = self._regex.match(relpath)  # type: ignore[attr-defined]
        return match.group("name") if match else None

    def relpath_of(self, name: str) -> str:
        """Return the path below the root where the prompt `name` lives."""
        return self.pattern.replace("{name}", name)

    def repo_path(self, relpath: str) -> str:
        """Return a path below the root as a path from the repository's top."""
        return f"{self.root}/{relpath}" if self.root else relpath


def check_name(name: str) -> str:
    """Return `name` if it is a valid prompt name, else raise ConfigError."""
    if not _NAME_FULL.match(name):
        raise InvalidPromptName(name)
    return name


def load_layout(
    repo_dir: str | Path | None,
    *,
    root: str | None = None,
    pattern: str | None = None,
    branch: str | None = None,
    config_text: str | None = None,
) -> Layout:
    """Build the layout from promptctl.toml, then environment variables, then options."""
    values: dict[str, str] = {}
    if config_text is None and repo_dir is not None:
        path = Path(repo_dir) / CONFIG_FILE
        if path.is_file():
            config_text = path.read_text(encoding="utf-8")
    if config_text is not None:
        values.update(_parse_config(config_text))
    for key in _KEYS:
        env = os.environ.get(f"PROMPTCTL_{key.upper()}")
        if env:
            values[key] = env
    for key, option in (("root", root), ("pattern", pattern), ("branch", branch)):
        if option:
            values[key] = option
    return replace(Layout(), **values) if values else Layout()


def _parse_config(text: str) -> dict[str, str]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfigFile(CONFIG_FILE, str(exc)) from exc
    section = data.get("promptctl", data)
    if not isinstance(section, dict):
        raise InvalidConfigFile(CONFIG_FILE, "[promptctl] must be a table")
    # [rollout] holds the rollout policies, read by registry.rollouts.policy.
    unknown = sorted(set(section) - set(_KEYS) - {"promptctl", "rollout"})
    if unknown:
        raise InvalidConfigFile(
            CONFIG_FILE, f"unknown key(s) {', '.join(unknown)} (known: {', '.join(_KEYS)})"
        )
    values = {}
    for key in _KEYS:
        if key in section:
            if not isinstance(section[key], str) or not section[key].strip():
                raise InvalidConfigFile(CONFIG_FILE, f"'{key}' must be a non-empty string")
            values[key] = section[key]
    return values
