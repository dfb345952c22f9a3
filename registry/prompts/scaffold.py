"""`promptctl init`: a new prompt repository, or promptctl.toml added to an existing one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptctl.registry.errors import RepositoryError
from promptctl.registry.prompts.gitstore import GitStore, init_repository
from promptctl.registry.prompts.layout import CONFIG_FILE, Layout, load_layout

EXAMPLE_PROMPT = """\
---
description: Greet a user by name in the tone of the product
model: gpt-4o-mini
params: {temperature: 0.3, max_tokens: 200}
input:
  user_name: {type: string, description: the name to greet}
  language: {type: string, enum: [en, fr, de], default: en}
samples:
  - {user_name: Ada}
  - {user_name: Grace, language: fr}
---
{% message "system" %}
{% include "partials/tone.j2" %}
Answer in the language with ISO code {{ language }}.
{% endmessage %}
{% message "user" %}
Say hello to {{ user_name }}.
{% endmessage %}
"""

EXAMPLE_PARTIAL = "You are friendly, brief and precise.\n"


def init_project(
    directory: Path,
    *,
    root: str | None = None,
    pattern: str | None = None,
    branch: str | None = None,
) -> dict[str, Any]:
    """Create or adopt a repository; never overwrite a file that is already there."""
    directory.mkdir(parents=True, exist_ok=True)
    created = False
    try:
        store = GitStore(directory)
    except RepositoryError:
        store = init_repository(directory, branch or "main")
        created = True
    top = store.workdir
    if top is None:
        raise RepositoryError(f"'{directory}' is a bare repository: init needs a working tree")
    current = store.head_description() if store.has_commits() else None
    tracked = branch or (current if current and current in store.branches() else "main")
    layout = load_layout(None, root=root, pattern=pattern, branch=tracked)
    written: list[str] = []
    kept: list[str] = []
    config = top / CONFIG_FILE
    if config.exists():
        kept.append(CONFIG_FILE)
    else:
        config.write_text(_config_text(layout), encoding="utf-8")
        written.append(CONFIG_FILE)
    ignore = top / ".gitignore"
    ignored = ignore.read_text(encoding="utf-8") if ignore.exists() else ""
    if ".promptctl/" not in ignored.split():
        # The embedded release database lives in .promptctl/ and never belongs in git.
        prefix = "" if not ignored or ignored.endswith("\n") else "\n"
        ignore.write_text(ignored + prefix + ".promptctl/\n", encoding="utf-8")
        written.append(".gitignore")
    prompt_dir = top / layout.root if layout.root else top
    if not (prompt_dir.is_dir() and any(prompt_dir.iterdir())):
        example = {
            layout.relpath_of("hello"): EXAMPLE_PROMPT,
            "partials/tone.j2": EXAMPLE_PARTIAL,
        }
        for relpath, text in example.items():
            target = prompt_dir / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            written.append(layout.repo_path(relpath))
    else:
        kept.append(layout.root or ".")
    return {
        "repository": str(top),
        "created_repository": created,
        "layout": {"root": layout.root, "pattern": layout.pattern, "branch": layout.branch},
        "written": written,
        "kept": kept,
    }


def _config_text(layout: Layout) -> str:
    return (
        "# promptctl: where the prompts of this repository live\n"
        f'root = "{layout.root}"\n'
        f'pattern = "{layout.pattern}"\n'
        f'branch = "{layout.branch}"\n'
    )
