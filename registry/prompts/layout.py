"""Where prompts live in a repository: the root folder, the file-name pattern, the branch,
and the template engine of files that do not name one.

Read from `promptctl.toml` at the repository root, overridden by `PROMPTCTL_ROOT`,
`PROMPTCTL_PATTERN`, `PROMPTCTL_BRANCH` and `PROMPTCTL_TEMPLATE`, overridden in turn by
explicit options, so a team can adopt an existing prompt repository without moving a file.
A branch named nowhere is guessed from the repository (see PromptLibrary), and the layout
says so (`branch_guessed`).

Names allow capitals (`patterns/Summarize_PR`) and are compared case-sensitively. A file
shaped like a prompt (the pattern's prefix and suffix around it) whose name the rule still
refuses is not dropped in silence: `skip_reason` says why, and `list` and `lint` show it.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from promptctl.registry.errors import ConfigError, InvalidConfigFile, InvalidPromptName

CONFIG_FILE = "promptctl.toml"
NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]*(?:/[A-Za-z0-9][A-Za-z0-9_.-]*)*"
_NAME_FULL = re.compile(NAME_RE + r"\Z")
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_KEYS = ("root", "pattern", "branch", "template")
DEFAULT_BRANCH = "main"
# The template engines a prompt may use (`template:` in front matter, or the default).
ENGINES = ("jinja2", "plain", "mustache")


@dataclass(frozen=True)
class Layout:
    """How prompt names map to paths in the repository."""

    root: str = "prompts"
    pattern: str = "{name}.prompt"
    branch: str = DEFAULT_BRANCH
    template: str = "jinja2"
    # True when no configuration named the branch: it was guessed from the repository.
    branch_guessed: bool = False

    def __post_init__(self) -> None:
        if self.template not in ENGINES:
            raise ConfigError(
                f"template '{self.template}' is not an engine (known: {', '.join(ENGINES)})"
            )
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
        shaped = re.compile(re.escape(before) + "(?P<name>.+)" + re.escape(after) + r"\Z")
        object.__setattr__(self, "_shaped", shaped)

    def name_of(self, relpath: str) -> str | None:
        """Return the prompt name for a path below the root, or None if it is not a prompt."""
        match = self._regex.match(relpath)  # type: ignore[attr-defined]
        return match.group("name") if match else None

    def skip_reason(self, relpath: str) -> str | None:
        """Say why a file shaped like a prompt is not one (its name breaks the rule), or
        None when it is a prompt or does not look like one at all."""
        if self.name_of(relpath) is not None:
            return None
        match = self._shaped.match(relpath)  # type: ignore[attr-defined]
        if match is None:
            return None
        return name_problem(match.group("name"))

    def relpath_of(self, name: str) -> str:
        """Return the path below the root where the prompt `name` lives."""
        return self.pattern.replace("{name}", name)

    def repo_path(self, relpath: str) -> str:
        """Return a path below the root as a path from the repository's top."""
        return f"{self.root}/{relpath}" if self.root else relpath


def name_problem(name: str) -> str:
    """Say what is wrong with a name the rule refuses (the first part that breaks it)."""
    for part in name.split("/"):
        if not part:
            return f"name '{name}' has an empty part (a leading, trailing or double '/')"
        if not _PART.match(part):
            bad = sorted({c for c in part if not (c.isascii() and (c.isalnum() or c in "_.-"))})
            if bad:
                shown = ", ".join(repr(c) for c in bad)
                return f"name '{name}' has characters a prompt name cannot have ({shown})"
            return f"name part '{part}' must start with a letter or a digit"
    return f"name '{name}' breaks the naming rule"


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
    template: str | None = None,
    config_text: str | None = None,
) -> Layout:
    """Build the layout from promptctl.toml, then environment variables, then options.

    With the branch named nowhere, the layout has `main` and `branch_guessed` set: the
    library then asks the repository for its own default branch.
    """
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
    options = (("root", root), ("pattern", pattern), ("branch", branch), ("template", template))
    for key, option in options:
        if option:
            values[key] = option
    layout = replace(Layout(), **values) if values else Layout()
    return layout if "branch" in values else replace(layout, branch_guessed=True)


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
    if "template" in values and values["template"] not in ENGINES:
        raise InvalidConfigFile(
            CONFIG_FILE,
            f"template '{values['template']}' is not an engine (known: {', '.join(ENGINES)})",
        )
    return values
