"""One version of a prompt as a value: its file, partials and digest, ready to render.

This module is what the runtime client shares with the server, so it imports neither git
nor the database: a version rebuilt from a release snapshot renders exactly as one read
from the repository.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from jinja2 import Template

from promptctl.registry.prompts.engines import (
    JINJA2,
    MUSTACHE,
    PLAIN,
    render_mustache,
    render_plain,
)
from promptctl.registry.prompts.outputs import (
    declared_schema_ref,
    parse_output,
    resolve_output_schema,
    schema_relpath,
)
from promptctl.registry.prompts.promptfile import (
    PromptFile,
    check_version_size,
    parse_prompt_file,
)
from promptctl.registry.prompts.render_limits import DEFAULT_LIMITS, RenderLimits
from promptctl.registry.prompts.rendering import (
    Rendered,
    compile_body,
    has_message_blocks,
    make_environment,
    render_compiled,
)
from promptctl.registry.prompts.variables import undeclared, validate_variables

if TYPE_CHECKING:
    from promptctl.registry.prompts.gitstore import CommitInfo

SHORT = 12  # hex characters of a digest that are shown
# Where a version's files carry the engine it took from the repository's default (a key
# no path below the root can be): snapshots and documents render as the repository did.
ENGINE_FILE = "/template"


def normalize_include(name: str) -> str:
    """Return an include name as a normalised path below the prompt root."""
    return posixpath.normpath(name.lstrip("/")).removeprefix("./")


@dataclass(frozen=True)
class PromptVersion:
    """One version of a prompt: its file, its partials, its digest and where it came from."""

    name: str
    digest: str
    prompt: PromptFile
    partials: dict[str, str | None]
    source: str
    commit: CommitInfo | None = None
    number: int | None = None
    first_commit: CommitInfo | None = None
    relpath: str = ""
    root: str = ""
    is_chat: bool = False
    limits: RenderLimits = field(default=DEFAULT_LIMITS, repr=False, compare=False)
    # The template engine: the front matter's `template:`, else the repository's default.
    engine: str = JINJA2

    @property
    def label(self) -> str:
        """`v3`, or the short digest for a version with no number yet."""
        return f"v{self.number}" if self.number else self.digest[:SHORT]

    @property
    def short_digest(self) -> str:
        return self.digest[:SHORT]

    @property
    def schema_file(self) -> str | None:
        """The output schema file (path below the root) the version names, if any."""
        ref = declared_schema_ref(self.prompt.front_matter)
        return schema_relpath(self.prompt.path, ref) if ref is not None else None

    def parse_output(self, text: str) -> Any:
        """Parse a model's answer to this version; raise OutputInvalid if it breaks the
        version's output contract (see registry.prompts.outputs)."""
        return parse_output(text, digest=self.digest, prompt=self.prompt, label=self.described)

    @property
    def described(self) -> str:
        """`support/triage@v3`: the version as messages name it."""
        return f"{self.name}@{self.label}"

    @property
    def defaulted_engine(self) -> str | None:
        """The engine when it came from the repository's default rather than the file
        (jinja2, the built-in default, counts as none): part of the digest and snapshot."""
        return self.engine if self.prompt.engine is None and self.engine != JINJA2 else None

    def files(self) -> dict[str, str]:
        """Return {path below root: text} for the prompt file and every partial it has
        (and ENGINE_FILE with the engine, when the repository's default chose it)."""
        out = {self.relpath: self.prompt.text}
        out.update({p: t for p, t in self.partials.items() if t is not None})
        if self.defaulted_engine is not None:
            out[ENGINE_FILE] = self.defaulted_engine
        return out

    def repo_path(self, relpath: str) -> str:
        return f"{self.root}/{relpath}" if self.root else relpath

    @cached_property
    def template(self) -> Template:
        """The compiled body, with partials served from this version's own files."""
        files = {p: t for p, t in self.files().items() if p != ENGINE_FILE}
        # Partials are keyed by normalised path, as the digest names them ("./x" is "x").
        env = make_environment(
            lambda name: files.get(normalize_include(name)),
            lambda name: self.repo_path(normalize_include(name)),
        )
        return compile_body(env, self.prompt.padded_body(), repo_path=self.prompt.path)

    def render(
        self, variables: Mapping[str, Any], *, limits: RenderLimits | None = None
    ) -> Rendered:
        """Validate the variables and render this version within `limits` (else its own).

        Variables the version does not declare are left out and named in `ignored`, unless
        the prompt says `strict: true` (then they are an error).
        """
        inputs, strict = self.prompt.inputs, self.prompt.strict
        values = validate_variables(self.name, inputs, variables, strict=strict)
        if self.engine == PLAIN:
            text = render_plain(
                self.prompt.body,
                values,
                set(inputs or {}),
                path=self.prompt.path,
                limits=limits or self.limits,
            )
            rendered = Rendered(None, text)
        elif self.engine == MUSTACHE:
            files = self.files()
            text = render_mustache(
                self.prompt.body,
                values,
                lambda relpath: None if relpath == ENGINE_FILE else files.get(relpath),
                path=self.prompt.path,
                limits=limits or self.limits,
            )
            rendered = Rendered(None, text)
        else:
            rendered = render_compiled(
                self.template,
                values,
                chat=self.is_chat,
                repo_path=self.prompt.path,
                limits=limits or self.limits,
                data_roles=self.prompt.data_roles,
            )
        ignored = () if strict else undeclared(inputs, variables)
        return replace(rendered, ignored=ignored) if ignored else rendered

    def to_json(self, *, content: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt": self.name,
            "version": self.number,
            "label": self.label,
            "digest": self.digest,
            "source": self.source,
            "path": self.prompt.path,
            "kind": "chat" if self.is_chat else "text",
            "model": self.prompt.model,
            "params": self.prompt.params,
            "description": self.prompt.description,
            "inputs": {k: v.to_dict() for k, v in (self.prompt.inputs or {}).items()},
            "partials": sorted(self.partials),
            "commit": self.commit.to_json() if self.commit else None,
            "first_commit": self.first_commit.to_json() if self.first_commit else None,
        }
        if content:
            out["front_matter"] = self.prompt.front_matter
            out["body"] = self.prompt.body
        return out


def version_from_files(
    name: str,
    *,
    digest: str,
    root: str,
    relpath: str,
    files: Mapping[str, str],
    source: str,
    number: int | None = None,
    engine: str | None = None,
) -> PromptVersion:
    """Rebuild a version from stored content (a release snapshot), without git.

    The engine is the file's own, else the one stored beside the files (ENGINE_FILE, or
    `engine` as a document names it), else jinja2.
    """
    files = dict(files)
    stored_engine = files.pop(ENGINE_FILE, None) or engine
    repo_path = f"{root}/{relpath}" if root else relpath
    check_version_size(
        repo_path,
        len(files[relpath].encode()),
        [(p, len(t.encode())) for p, t in files.items() if p != relpath],
    )
    prompt = parse_prompt_file(repo_path, files[relpath])
    partials: dict[str, str | None] = {p: t for p, t in files.items() if p != relpath}
    chosen = prompt.engine or stored_engine or JINJA2
    return PromptVersion(
        name=name,
        digest=digest,
        prompt=resolve_output_schema(prompt, partials),
        partials=partials,
        source=source,
        number=number,
        relpath=relpath,
        root=root,
        is_chat=is_chat(prompt, partials, chosen),
        engine=chosen,
    )


def is_chat(prompt: PromptFile, partials: Mapping[str, str | None], engine: str = JINJA2) -> bool:
    """Tell whether a version renders to chat messages (Jinja2 message blocks only)."""
    if engine != JINJA2:
        return False
    return has_message_blocks(prompt.body) or any(
        has_message_blocks(t) for t in partials.values() if t
    )


def version_from_document(doc: Mapping[str, Any], source: str) -> PromptVersion:
    """Rebuild a version from `version_document` output (what the client receives)."""
    files = {doc["path"]: doc["source"], **doc.get("partials", {})}
    # "name" in documents from servers and bundles before the shared JSON vocabulary.
    name = doc["prompt"] if "prompt" in doc else doc["name"]
    return version_from_files(
        name,
        digest=doc["digest"],
        root=doc.get("root", ""),
        relpath=doc["path"],
        files=files,
        source=source,
        number=doc.get("version"),
        engine=doc.get("template_engine"),
    )
