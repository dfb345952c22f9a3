"""The registry's exceptions: one base, grouped subclasses, each building its own message.

Every error carries the HTTP status and title a transport should answer with, so the
server maps them in one handler and the CLI in one place, without knowing the classes.
The module is long on purpose: every error lives here and nowhere else, so that one file
shows every way the registry can refuse. The hierarchy:

    RegistryError                       400  a user's mistake or a missing thing
      NotFound                          404
        PromptNotFound
        VersionNotFound
        RevisionNotFound
        EnvironmentNotFound
        ReleaseNotFound
        NeverReleased
        TokenNotFound
        PolicyNotFound
        RolloutNotFound
      UsageError                        400  a malformed argument
        InvalidEnvironmentName
        InvalidWeight
      ConfigError                       422  promptctl.toml, a layout option, a database URL
        InvalidConfigFile
        InvalidPromptName
        InvalidPolicy                        a rollout policy, by file, line and field
        UnguardedHost                        a server without tokens asked off loopback
      RepositoryError                   422  the git repository cannot be read as asked
        NotARepository
        BranchNotFound
        ObjectMissing
        HistoryUnreadable
        RepositoryUnreadable            503  with Retry-After: gone, moved or unreadable now
      InvalidPromptFile                 422
        FileTooLarge
        TemplateError
          RenderLimitExceeded
      VariablesInvalid                  422
      LintFailed                        422
      InvalidBatch                      422  a metrics batch of the wrong shape
      InvalidWebhook                    422  a subscription's URL, events or filters
        UnknownEventType
        WebhookTargetRefused                 a private or loopback target (the SSRF guard)
      BatchTooLarge                     413
      ReleaseError                      409  an action that makes no sense in the release's state
        EnvironmentExists
        NoCanary
        NoStableForCanary
        AlreadyStable
        AlreadyCanary
        NeverStableHere
        NothingToRollBack
        IncompatibleVersion                  a canary whose inputs break callers of what serves
        ReleaseConflict
        RevisionMismatch                412  (HTTP If-Match)
        RolloutError                         a rollout action its state does not allow
      UnmergedVersion                   409
      VersionNotOnServer                409  a digest the server's repository lacks, fetched or not
      NoRemote                          409  a fetch asked of a clone that follows no remote
      FetchFailed                       502  the followed remote cannot be fetched or followed
      Unauthorized                      401
      Forbidden                         403
        InsufficientScope
        OtherEnvironment
        ProtectedNeedsEnvironmentToken
      WebhookSignatureInvalid           401
      ProtectedEnvironment              403
      DatabaseError                     503
        DatabaseUnreachable
        DatabaseFileUnusable
        SchemaOutOfDate
      ServiceBusy                       503  with Retry-After
      TooManyStreams                    503  with Retry-After

A status left blank is the parent's. The errors that name one condition of a generic one
(NoCanary of ReleaseError, InsufficientScope of Forbidden, ...) keep its title as well:
`except ReleaseError` still catches them, and the HTTP answer is the generic one's.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "AlreadyCanary",
    "AlreadyStable",
    "BatchTooLarge",
    "BranchNotFound",
    "ConfigError",
    "DatabaseError",
    "DatabaseFileUnusable",
    "DatabaseUnreachable",
    "EnvironmentExists",
    "EnvironmentNotFound",
    "FetchFailed",
    "FileTooLarge",
    "Forbidden",
    "HistoryUnreadable",
    "IncompatibleVersion",
    "InsufficientScope",
    "InvalidBatch",
    "InvalidConfigFile",
    "InvalidEnvironmentName",
    "InvalidPromptFile",
    "InvalidPolicy",
    "InvalidPromptName",
    "InvalidWebhook",
    "InvalidWeight",
    "LintFailed",
    "NeverReleased",
    "NoCanary",
    "NoRemote",
    "NoStableForCanary",
    "NotARepository",
    "NotFound",
    "NeverStableHere",
    "NothingToRollBack",
    "ObjectMissing",
    "OtherEnvironment",
    "PolicyNotFound",
    "PromptNotFound",
    "ProtectedEnvironment",
    "ProtectedNeedsEnvironmentToken",
    "RegistryError",
    "ReleaseConflict",
    "ReleaseError",
    "ReleaseNotFound",
    "RenderLimitExceeded",
    "RepositoryError",
    "RepositoryUnreadable",
    "RevisionMismatch",
    "RevisionNotFound",
    "RolloutError",
    "RolloutNotFound",
    "SchemaOutOfDate",
    "ServiceBusy",
    "TemplateError",
    "TokenNotFound",
    "UnguardedHost",
    "UnknownEventType",
    "Unauthorized",
    "UnmergedVersion",
    "UsageError",
    "VariablesInvalid",
    "VersionNotFound",
    "VersionNotOnServer",
    "WebhookNotFound",
    "WebhookSignatureInvalid",
    "WebhookTargetRefused",
    "close_matches",
]


def close_matches(name: str, candidates: Iterable[str]) -> tuple[str, ...]:
    """The candidates a mistyped `name` most likely meant, best first (at most three)."""
    return tuple(difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6))


def _did_you_mean(suggestions: Sequence[str]) -> str:
    if not suggestions:
        return ""
    return "; did you mean " + " or ".join(f"'{s}'" for s in suggestions) + "?"


class RegistryError(Exception):
    """Base of every error the registry raises for a user's mistake or a missing thing."""

    status: int = 400
    title: str = "Registry error"
    retry_after: int | None = None  # seconds, sent as Retry-After with a 503

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# -- not found ------------------------------------------------------------------------


class NotFound(RegistryError):
    """Something that was asked for does not exist."""

    status = 404
    title = "Not found"


class PromptNotFound(NotFound):
    """No prompt of that name at that revision."""

    status = 404
    title = "Prompt not found"

    def __init__(self, name: str, where: str | None = None, known: Iterable[str] = ()) -> None:
        self.name = name
        self.suggestions = close_matches(name, known)
        suffix = f" at {where}" if where else ""
        super().__init__(f"unknown prompt '{name}'{suffix}{_did_you_mean(self.suggestions)}")


class VersionNotFound(NotFound):
    """A version reference that matches no version of the prompt."""

    status = 404
    title = "Version not found"

    def __init__(self, name: str, ref: str, hint: str = "") -> None:
        self.name = name
        self.ref = ref
        self.hint = hint
        extra = f" ({hint})" if hint else ""
        super().__init__(f"prompt '{name}' has no version '{ref}'{extra}")


class RevisionNotFound(NotFound):
    """A git revision that does not resolve to a commit."""

    status = 404
    title = "Revision not found"

    def __init__(self, rev: str, hint: str = "") -> None:
        self.rev = rev
        extra = f" ({hint})" if hint else ""
        super().__init__(f"unknown git revision '{rev}'{extra}")


class EnvironmentNotFound(NotFound):
    """No environment of that name."""

    status = 404
    title = "Environment not found"

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        self.suggestions = close_matches(name, known or ())
        extra = f" (environments: {', '.join(known)})" if known else ""
        super().__init__(f"unknown environment '{name}'{_did_you_mean(self.suggestions)}{extra}")


class ReleaseNotFound(NotFound):
    """Nothing has been released for that prompt in that environment."""

    status = 404
    title = "Release not found"

    def __init__(self, prompt: str, environment: str, released: Iterable[str] = ()) -> None:
        self.prompt = prompt
        self.environment = environment
        self.suggestions = close_matches(prompt, released)
        super().__init__(
            f"'{prompt}' has no release in {environment}{_did_you_mean(self.suggestions)}"
        )


class NeverReleased(NotFound):
    """A prompt with no released version has no metrics."""

    status = 404
    title = "Prompt not released"

    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        super().__init__(f"'{prompt}' has never been released, so it has no metrics")


class TokenNotFound(NotFound):
    """No active API token with that name, id or prefix."""

    status = 404
    title = "Token not found"

    def __init__(self, name_or_id: str) -> None:
        self.name_or_id = name_or_id
        super().__init__(f"no active token named '{name_or_id}'")


# -- bad input ------------------------------------------------------------------------


class UsageError(RegistryError):
    """An argument is malformed (for example a --var without '=')."""

    status = 400
    title = "Bad argument"


class InvalidEnvironmentName(UsageError):
    """An environment name that the naming rule does not allow."""

    status = 400
    title = "Bad argument"

    def __init__(self, name: str, max_length: int) -> None:
        self.name = name
        super().__init__(
            f"invalid environment name '{name}': use lower-case letters, digits, '_', '.' "
            f"and '-', at most {max_length} characters"
        )


class InvalidWeight(UsageError):
    """A canary weight that is not a percentage from 0 to 100 in steps of 0.01."""

    status = 400
    title = "Bad argument"
    _PROBLEMS = {
        "not a number": "weight '{weight}' is not a number (expected a percentage 0-100)",
        "out of range": "weight {weight} is outside 0-100 percent",
        "too precise": "weight {weight} has more than two decimals (resolution is 0.01%)",
    }

    def __init__(self, weight: str | float, problem: str = "out of range") -> None:
        self.weight = weight
        self.problem = problem
        super().__init__(self._PROBLEMS[problem].format(weight=weight))


class ConfigError(RegistryError):
    """promptctl.toml or a layout option is wrong."""

    status = 422
    title = "Configuration error"


class InvalidConfigFile(ConfigError):
    """promptctl.toml cannot be read or holds a wrong key or value."""

    status = 422
    title = "Configuration error"

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"{path}: {detail}")


class InvalidPromptName(ConfigError):
    """A prompt name that the naming rule does not allow."""

    status = 422
    title = "Configuration error"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"invalid prompt name '{name}': use letters, digits, '_', '.', '-' "
            "and '/' between parts, each part starting with a letter or digit"
        )


class UnguardedHost(ConfigError):
    """A server without API tokens asked to listen on an address other than loopback."""

    status = 422
    title = "Configuration error"

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"refusing to listen on {host} without tokens: anyone could change releases. "
            "Use --tokens (PROMPTCTL_TOKENS=true; create one with 'promptctl token create'), "
            "or bind to 127.0.0.1"
        )


class RepositoryError(RegistryError):
    """The repository cannot be opened or read as asked."""

    status = 422
    title = "Repository error"


class NotARepository(RepositoryError):
    """A path that is not inside a git repository."""

    status = 422
    title = "Repository error"

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"'{path}' is not inside a git repository (run 'promptctl init' to make one)"
        )


class BranchNotFound(RepositoryError):
    """The tracked branch does not exist in the repository."""

    status = 422
    title = "Repository error"

    def __init__(self, branch: str, local_branches: list[str]) -> None:
        self.branch = branch
        self.local_branches = local_branches
        others = ", ".join(local_branches) or "none"
        super().__init__(
            f"tracked branch '{branch}' does not exist (local branches: {others});"
            " set 'branch' in promptctl.toml, --branch or PROMPTCTL_BRANCH"
        )


class ObjectMissing(RepositoryError):
    """A blob or tree id that names no such object in the repository."""

    status = 422
    title = "Repository error"

    def __init__(self, kind: str, oid: str) -> None:
        self.kind = kind
        self.oid = oid
        super().__init__(f"the repository has no {kind} '{oid}'")


class HistoryUnreadable(RepositoryError):
    """A commit whose ancestors are not all in the repository (a shallow or damaged clone)."""

    status = 422
    title = "Repository error"

    def __init__(self, sha: str, error: str) -> None:
        self.sha = sha
        self.error = error
        super().__init__(f"cannot read the history of commit {sha}: {error}")


class RepositoryUnreadable(RepositoryError):
    """The repository cannot be opened or read now: its folder is gone, moved or unreadable.

    A 503, unlike the other repository errors: the request was fine and the server's clone
    is what failed, so the caller may try again once it is back.
    """

    status = 503
    title = "Repository unavailable"
    retry_after = 10

    def __init__(self, path: str, error: str) -> None:
        self.path = path
        self.error = error
        super().__init__(f"cannot read the git repository at '{path}': {error}")


class InvalidPromptFile(RegistryError):
    """A prompt or partial file is malformed; names the file, line and field."""

    status = 422
    title = "Invalid prompt file"

    def __init__(
        self, path: str, detail: str, *, line: int | None = None, field: str | None = None
    ) -> None:
        self.path = path
        self.detail = detail
        self.line = line
        self.field = field
        location = path if line is None else f"{path}:{line}"
        where = f" (field '{field}')" if field else ""
        super().__init__(f"{location}: {detail}{where}")


class FileTooLarge(InvalidPromptFile):
    """A prompt or partial file over its size limit."""

    status = 422
    title = "Invalid prompt file"

    def __init__(self, path: str, size: int, limit: int, kind: str) -> None:
        self.size = size
        self.limit = limit
        self.kind = kind
        super().__init__(
            path, f"file of {size:,} bytes is over the limit of {limit:,} bytes for a {kind}"
        )


class TemplateError(InvalidPromptFile):
    """A template does not compile or fails while rendering."""

    status = 422
    title = "Template error"


class RenderLimitExceeded(TemplateError):
    """Rendering passed a limit on time or size (a hostile or runaway template)."""

    status = 422
    title = "Render limit exceeded"

    def __init__(self, path: str, limit: str, detail: str, *, line: int | None = None) -> None:
        self.limit = limit
        super().__init__(path, f"{detail} (render limit '{limit}')", line=line)


class VariablesInvalid(RegistryError):
    """Variables given for rendering do not match the prompt's input declarations."""

    status = 422
    title = "Invalid variables"

    def __init__(self, name: str, problems: list[str]) -> None:
        self.name = name
        self.problems = problems
        super().__init__(f"invalid variables for '{name}': " + "; ".join(problems))


class LintFailed(RegistryError):
    """A version with lint errors may be promoted only with force."""

    status = 422
    title = "Version fails lint"

    def __init__(self, label: str, first: str, count: int) -> None:
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"{label} fails lint: {first}{more}; fix it or promote with --force")


class InvalidBatch(RegistryError):
    """A metrics batch that is not a list under its one key."""

    status = 422
    title = "Invalid metrics batch"

    def __init__(self, key: str, unknown: list[str] | None = None) -> None:
        self.key = key
        self.unknown = unknown or []
        if self.unknown:
            fields = ", ".join(f"'{k}'" for k in self.unknown)
            message = f'unknown field {fields}: the body is {{"{key}": [...]}}'
        else:
            message = f'the body must be {{"{key}": [...]}} (or a JSON list of {key})'
        super().__init__(message)


class BatchTooLarge(RegistryError):
    """A metrics batch with more items than the server takes at once."""

    status = 413
    title = "Batch too large"

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"the batch has {size} items, over the limit of {limit}: split it and send again"
        )


# -- releases -------------------------------------------------------------------------


class ReleaseError(RegistryError):
    """A release action that makes no sense in the release's current state."""

    status = 409
    title = "Invalid release action"


class EnvironmentExists(ReleaseError):
    """An environment of that name already exists."""

    status = 409
    title = "Environment exists"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"environment '{name}' already exists")


class NoCanary(ReleaseError):
    """A canary action on a release that runs no canary."""

    status = 409
    title = "Invalid release action"

    def __init__(self, prompt: str, environment: str, action: str | None = None) -> None:
        self.prompt = prompt
        self.environment = environment
        self.action = action
        purpose = f" to {action}" if action else ""
        super().__init__(f"'{prompt}' has no canary in {environment}{purpose}")


class NoStableForCanary(ReleaseError):
    """A canary asked for where nothing is stable to compare it with."""

    status = 409
    title = "Invalid release action"

    def __init__(self, prompt: str, environment: str) -> None:
        self.prompt = prompt
        self.environment = environment
        super().__init__(
            f"'{prompt}' has nothing stable in {environment} to compare a canary with: "
            "promote a stable version first (without --canary)"
        )


class AlreadyStable(ReleaseError):
    """The version a promote, canary or rollback names is the stable one already."""

    status = 409
    title = "Invalid release action"
    _MESSAGES = {
        "promote": "{label} of '{prompt}' is already stable in {environment}",
        "canary": "{label} is already stable in {environment}; a canary must differ",
        "rollback": "{label} is already stable in {environment}",
    }

    def __init__(self, prompt: str, environment: str, label: str, action: str) -> None:
        self.prompt = prompt
        self.environment = environment
        self.label = label
        self.action = action
        template = self._MESSAGES[action]
        super().__init__(template.format(label=label, prompt=prompt, environment=environment))


class AlreadyCanary(ReleaseError):
    """The version promoted as canary is the canary already."""

    status = 409
    title = "Invalid release action"

    def __init__(self, prompt: str, environment: str, label: str) -> None:
        self.prompt = prompt
        self.environment = environment
        self.label = label
        super().__init__(
            f"{label} is already the canary in {environment}: change its weight "
            "with 'promptctl canary --weight'"
        )


class NeverStableHere(ReleaseError):
    """A rollback target that was never stable in that environment (promote it instead)."""

    status = 409
    title = "Invalid release action"

    def __init__(self, prompt: str, environment: str, label: str) -> None:
        self.prompt = prompt
        self.environment = environment
        self.label = label
        super().__init__(
            f"{label} of '{prompt}' was never stable in {environment}: rollback only goes back "
            "to an earlier stable version; promote it instead (with its checks)"
        )


class NothingToRollBack(ReleaseError):
    """A rollback without a canary or a target, of a release's first stable version."""

    status = 409
    title = "Invalid release action"

    def __init__(self, prompt: str, environment: str) -> None:
        self.prompt = prompt
        self.environment = environment
        super().__init__(
            f"nothing to roll back to: the stable version of '{prompt}' in "
            f"{environment} is its first release (use --to REF)"
        )


class IncompatibleVersion(ReleaseError):
    """A version that would serve beside another (a canary and its stable get the same
    calls) but breaks that one's callers; each conflict says against which version and what
    (registry.prompts.contract). A release that says allow_breaking goes ahead."""

    status = 409
    title = "Incompatible version"

    def __init__(
        self, prompt: str, environment: str, label: str, role: str, conflicts: Sequence[Any]
    ) -> None:
        self.prompt = prompt
        self.environment = environment
        self.label = label
        self.role = role
        self.conflicts = list(conflicts)
        what = (
            "start as canary"
            if role == "canary"
            else "become stable while a canary runs"
        )
        found = "; ".join(str(c) for c in self.conflicts)
        super().__init__(
            f"{prompt}@{label} cannot {what} in {environment}: {found} "
            "(--allow-breaking to release it anyway)"
        )


class ReleaseConflict(ReleaseError):
    """Another action changed the release between our read and our write."""

    status = 409
    title = "Release conflict"

    def __init__(self, prompt: str, environment: str) -> None:
        super().__init__(
            f"the release of '{prompt}' in {environment} was changed by another action at the "
            "same time; nothing was stored, look at 'promptctl status' and try again"
        )


class RevisionMismatch(ReleaseError):
    """The caller's expected release revision is not the current one (HTTP If-Match)."""

    status = 412
    title = "Release revision mismatch"

    def __init__(self, prompt: str, environment: str, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"the release of '{prompt}' in {environment} is at revision {actual}, "
            f"not {expected}: nothing was stored"
        )


class UnmergedVersion(RegistryError):
    """A version that is not on the tracked branch cannot go to a protected environment."""

    status = 409
    title = "Unmerged version"

    def __init__(self, name: str, label: str, source: str, environment: str) -> None:
        super().__init__(
            f"{name}@{label} from {source} is not merged into the tracked branch: "
            f"previews may go to unprotected environments only, not {environment}"
        )


class VersionNotOnServer(RegistryError):
    """A release request's digest that the server's repository does not have, even after
    fetching its remote; says what it has instead."""

    status = 409
    title = "Version not on the server"

    def __init__(
        self,
        prompt: str,
        digest: str,
        *,
        ref: str | None = None,
        commit: str | None = None,
        has: str | None = None,
        branch: str | None = None,
        tip: str | None = None,
        at_commit: str | None = None,
        fetch: str | None = None,
    ) -> None:
        self.prompt = prompt
        self.digest = digest
        self.ref = ref
        self.commit = commit
        self.has = has
        self.branch = branch
        self.tip = tip
        self.at_commit = at_commit
        self.fetch = fetch
        asked = " ".join(
            part
            for part in (ref, f"from commit {commit[:10]}" if commit else None)
            if part
        )
        message = f"{prompt} {digest[:12]}" + (f" ({asked})" if asked else "")
        message += " is not in the server's repository"
        where = f" on {branch}@{tip[:10]}" if branch and tip else ""
        if has:
            message += f", which has {prompt} at {has}{where}"
        elif where:
            message += f", which has no '{prompt}'{where}"
        if at_commit and commit:
            message += (
                f"; its commit {commit[:10]} has {prompt} at {at_commit[:12]}, not {digest[:12]}"
                " (do the CLI and the server read the same promptctl.toml?)"
            )
        if fetch:
            message += f"; {fetch}"
        super().__init__(message)


class NoRemote(RegistryError):
    """A fetch asked of a repository that follows no remote."""

    status = 409
    title = "No remote"

    def __init__(self) -> None:
        super().__init__(
            "the server's repository follows no remote: set PROMPTCTL_GIT_REMOTE (a remote's "
            "name or URL), or give its clone an 'origin'"
        )


class FetchFailed(RegistryError):
    """The remote a server's clone follows cannot be fetched, or its branch not followed.

    A 502: the request was fine, the remote failed. Serving goes on from what is there.
    """

    status = 502
    title = "Fetch failed"
    _MESSAGES = {
        "unreachable": "cannot fetch from {remote}: it is unreachable ({error})",
        "authentication": (
            "cannot fetch from {remote}: authentication failed ({error}); put the credentials "
            "in the remote's URL (https://user:token@host/...) or in the SSH agent"
        ),
        "no branch": "fetched {remote}, but it has no branch '{branch}'",
        "diverged": (
            "fetched {remote}, but its '{branch}' does not descend from ours ({error}): "
            "a rewritten history is not followed"
        ),
        "failed": "cannot fetch from {remote}: {error}",
    }

    def __init__(self, remote: str, problem: str, error: str = "", branch: str = "") -> None:
        self.remote = remote
        self.problem = problem
        self.error = error
        self.branch = branch
        template = self._MESSAGES[problem]
        super().__init__(template.format(remote=remote, error=error, branch=branch))


# -- access ---------------------------------------------------------------------------


class Unauthorized(RegistryError):
    """No API token, or a token that is unknown or revoked."""

    status = 401
    title = "Unauthorized"


class Forbidden(RegistryError):
    """A valid API token whose scope does not allow the request."""

    status = 403
    title = "Forbidden"


class InsufficientScope(Forbidden):
    """The token's scope does not grant the one the request needs."""

    status = 403
    title = "Forbidden"

    def __init__(self, token: str, scope: str, needed: str) -> None:
        self.token = token
        self.scope = scope
        self.needed = needed
        super().__init__(f"token '{token}' has scope '{scope}', this needs '{needed}'")


class OtherEnvironment(Forbidden):
    """The token is limited to another environment than the request's."""

    status = 403
    title = "Forbidden"

    def __init__(self, token: str, limited_to: str, environment: str) -> None:
        self.token = token
        self.limited_to = limited_to
        self.environment = environment
        super().__init__(f"token '{token}' is limited to {limited_to}, not {environment}")


class ProtectedNeedsEnvironmentToken(Forbidden):
    """A release in a protected environment by a token not limited to it (nor admin)."""

    status = 403
    title = "Forbidden"

    def __init__(self, environment: str) -> None:
        self.environment = environment
        super().__init__(
            f"{environment} is protected: it needs an admin token or a release token "
            f"limited to {environment}"
        )


class WebhookSignatureInvalid(Unauthorized):
    """A push webhook whose X-Hub-Signature-256 is missing, malformed or does not match."""

    status = 401
    title = "Unauthorized"
    _MESSAGES = {
        "no secret": (
            "this server takes no webhooks: it has no PROMPTCTL_GIT_WEBHOOK_SECRET to check "
            "X-Hub-Signature-256 with; nothing fetched"
        ),
        "malformed": "X-Hub-Signature-256 must be 'sha256=<hex digest>'; nothing fetched",
        "mismatch": (
            "X-Hub-Signature-256 does not match the body: nothing fetched (is the webhook's "
            "secret the server's PROMPTCTL_GIT_WEBHOOK_SECRET?)"
        ),
    }

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(self._MESSAGES[problem])


class ProtectedEnvironment(RegistryError):
    """A change to a protected environment was not confirmed."""

    status = 403
    title = "Protected environment"

    def __init__(self, environment: str) -> None:
        self.environment = environment
        super().__init__(f"{environment} is protected: the change must be confirmed explicitly")


# -- the service ----------------------------------------------------------------------


class DatabaseError(RegistryError):
    """The database cannot be reached or its schema is not the one this code expects."""

    status = 503
    title = "Database unavailable"


class DatabaseUnreachable(DatabaseError):
    """The database driver cannot connect, or lost the database during a transaction."""

    status = 503
    title = "Database unavailable"
    _MESSAGES = {
        "connect": "cannot reach the database: {error}",
        "transaction": "database unavailable: {error}",
    }

    def __init__(self, error: str, when: str = "connect") -> None:
        self.error = error
        self.when = when
        super().__init__(self._MESSAGES[when].format(error=error))


class DatabaseFileUnusable(DatabaseError):
    """The SQLite file in use was moved, deleted or replaced, or cannot be written."""

    status = 503
    title = "Database unavailable"
    _MESSAGES = {
        "gone": (
            "the database file {file} is gone (moved or deleted while in use): "
            "put it back, or restart with the right --database-url"
        ),
        "replaced": "the database file {file} was replaced while in use: restart to use it",
        "not writable": "the database file {file} or its folder is not writable",
    }

    def __init__(self, file: str, problem: str) -> None:
        self.file = file
        self.problem = problem
        super().__init__(self._MESSAGES[problem].format(file=file))


class SchemaOutOfDate(DatabaseError):
    """The database schema is not at the newest migration, and may not be upgraded here."""

    status = 503
    title = "Database unavailable"

    def __init__(self, current: str | None, head: str | None) -> None:
        self.current = current
        self.head = head
        super().__init__(
            f"the database schema is at {current or 'nothing'}, not {head}: "
            "run 'promptctl db upgrade'"
        )


class ServiceBusy(RegistryError):
    """Every worker for this kind of request is busy; the caller should retry shortly."""

    status = 503
    title = "Service busy"

    def __init__(self, what: str, waited: float, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(f"{what}: every worker stayed busy for {waited:g} s; retry shortly")


class TooManyStreams(RegistryError):
    """This process holds as many change streams as it may; the caller should retry (on
    another replica, behind a load balancer) or poll."""

    status = 503
    title = "Too many streams"

    def __init__(self, limit: int, retry_after: int = 5) -> None:
        self.limit = limit
        self.retry_after = retry_after
        if limit == 0:
            super().__init__(
                "this server does not stream release changes (PROMPTCTL_STREAM_MAX_CLIENTS "
                "is 0): revalidate by polling"
            )
            return
        super().__init__(
            f"this server already streams to {limit} clients (PROMPTCTL_STREAM_MAX_CLIENTS); "
            "retry later, or revalidate by polling meanwhile"
        )


# -- rollouts -------------------------------------------------------------------------


class InvalidPolicy(ConfigError):
    """A rollout policy in promptctl.toml that cannot be used; names file, line and field."""

    status = 422
    title = "Invalid rollout policy"

    def __init__(self, path: str, line: int, field: str, problem: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.problem = problem
        super().__init__(f"{path}:{line}: {field}: {problem}")


class PolicyNotFound(NotFound):
    """A rollout policy name that promptctl.toml does not define."""

    title = "Rollout policy not found"

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        self.name = name
        self.suggestions = close_matches(name, known)
        names = ", ".join(sorted(known)) or "none"
        super().__init__(
            f"no rollout policy '{name}' (defined: {names}){_did_you_mean(self.suggestions)}"
        )


class RolloutNotFound(NotFound):
    """No rollout of a prompt in an environment (or none live, when one was needed)."""

    title = "Rollout not found"

    def __init__(self, prompt: str, environment: str, live: bool = False) -> None:
        self.prompt = prompt
        self.environment = environment
        what = "no live rollout" if live else "no rollout"
        super().__init__(f"{what} of {prompt} in {environment}")


class RolloutError(ReleaseError):
    """A rollout action that makes no sense in the rollout's (or release's) state."""

    status = 409
    title = "Invalid rollout action"


# -- webhooks -------------------------------------------------------------------------


class WebhookNotFound(NotFound):
    """No webhook subscription with that id."""

    status = 404
    title = "Webhook not found"

    def __init__(self, subscription_id: int) -> None:
        self.subscription_id = subscription_id
        super().__init__(
            f"no webhook subscription with id {subscription_id} ('promptctl webhook list')"
        )


class InvalidWebhook(RegistryError):
    """A subscription's URL, event types or filters cannot be used; names the field."""

    status = 422
    title = "Invalid webhook"

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{field}: {problem}")


class UnknownEventType(InvalidWebhook):
    """An event pattern that names no event type."""

    def __init__(self, pattern: str, known: Iterable[str]) -> None:
        self.pattern = pattern
        known = list(known)
        self.suggestions = close_matches(pattern, known)
        if not pattern:
            example = f"e.g. {known[0]} or release.*"
            super().__init__("events", f"give at least one event type, {example}")
            return
        super().__init__(
            "events",
            f"unknown event type '{pattern}'{_did_you_mean(self.suggestions)} "
            f"(known: {', '.join(known)}, or *)",
        )


class WebhookTargetRefused(InvalidWebhook):
    """A target on a private, loopback or link-local address while the SSRF guard is on."""

    def __init__(self, url: str, address: str, why: str) -> None:
        self.url = url
        self.address = address
        super().__init__(
            "url",
            f"{url} reaches {address}, {why}: this server serves with tokens on a public "
            "interface and refuses such targets (PROMPTCTL_WEBHOOK_ALLOW_PRIVATE=true allows "
            "them)",
        )
