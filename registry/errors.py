"""The registry's exceptions: one base, grouped subclasses, each building its own message.

Every error carries the HTTP status and title a transport should answer with, so the
server maps them in one handler and the CLI in one place, without knowing the classes:

    RegistryError                   400  a user's mistake or a missing thing
      NotFound                      404
        PromptNotFound              404
        VersionNotFound             404
        RevisionNotFound            404
        EnvironmentNotFound         404
        ReleaseNotFound             404
        NeverReleased               404
        TokenNotFound               404
      UsageError                    400  a malformed argument
      ConfigError                   422  promptctl.toml, a layout option, a database URL
      RepositoryError               422  the git repository cannot be read as asked
      InvalidPromptFile             422
        TemplateError               422
          RenderLimitExceeded       422
      VariablesInvalid              422
      LintFailed                    422
      InvalidBatch                  422  a metrics batch of the wrong shape
      BatchTooLarge                 413
      ReleaseError                  409  an action that makes no sense in the release's state
        EnvironmentExists           409
        ReleaseConflict             409
        RevisionMismatch            412
      UnmergedVersion               409
      Unauthorized                  401
      Forbidden                     403
      ProtectedEnvironment          403
      DatabaseError                 503
      ServiceBusy                   503
"""

from __future__ import annotations

__all__ = [
    "BatchTooLarge",
    "ConfigError",
    "DatabaseError",
    "EnvironmentExists",
    "EnvironmentNotFound",
    "Forbidden",
    "InvalidBatch",
    "InvalidPromptFile",
    "LintFailed",
    "NeverReleased",
    "NotFound",
    "PromptNotFound",
    "ProtectedEnvironment",
    "RegistryError",
    "ReleaseConflict",
    "ReleaseError",
    "ReleaseNotFound",
    "RenderLimitExceeded",
    "RepositoryError",
    "RevisionMismatch",
    "RevisionNotFound",
    "ServiceBusy",
    "TemplateError",
    "TokenNotFound",
    "Unauthorized",
    "UnmergedVersion",
    "UsageError",
    "VariablesInvalid",
    "VersionNotFound",
]


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

    def __init__(self, name: str, where: str | None = None) -> None:
        self.name = name
        suffix = f" at {where}" if where else ""
        super().__init__(f"unknown prompt '{name}'{suffix}")


class VersionNotFound(NotFound):
    """A version reference that matches no version of the prompt."""

    status = 404
    title = "Version not found"

    def __init__(self, name: str, ref: str, hint: str = "") -> None:
        self.name = name
        self.ref = ref
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
        extra = f" (environments: {', '.join(known)})" if known else ""
        super().__init__(f"unknown environment '{name}'{extra}")


class ReleaseNotFound(NotFound):
    """Nothing has been released for that prompt in that environment."""

    status = 404
    title = "Release not found"

    def __init__(self, prompt: str, environment: str) -> None:
        self.prompt = prompt
        self.environment = environment
        super().__init__(f"'{prompt}' has no release in {environment}")


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


# -- bad input ------------------------------------------------------------------------


class UsageError(RegistryError):
    """An argument is malformed (for example a --var without '=')."""

    status = 400
    title = "Bad argument"


class ConfigError(RegistryError):
    """promptctl.toml or a layout option is wrong."""

    status = 422
    title = "Configuration error"


class RepositoryError(RegistryError):
    """The repository cannot be opened or read as asked."""

    status = 422
    title = "Repository error"


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
    """A metrics batch that is not a list of objects under its key."""

    status = 422
    title = "Invalid metrics batch"


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


# -- access ---------------------------------------------------------------------------


class Unauthorized(RegistryError):
    """No API token, or a token that is unknown or revoked."""

    status = 401
    title = "Unauthorized"


class Forbidden(RegistryError):
    """A valid API token whose scope does not allow the request."""

    status = 403
    title = "Forbidden"


class ProtectedEnvironment(RegistryError):
    """A change to a protected environment was not confirmed."""

    status = 403
    title = "Protected environment"

    def __init__(self, environment: str) -> None:
        super().__init__(
            f"{environment} is protected: confirm the change explicitly (--yes on the CLI)"
        )


# -- the service ----------------------------------------------------------------------


class DatabaseError(RegistryError):
    """The database cannot be reached or its schema is not the one this code expects."""

    status = 503
    title = "Database unavailable"


class ServiceBusy(RegistryError):
    """Every worker for this kind of request is busy; the caller should retry shortly."""

    status = 503
    title = "Service busy"

    def __init__(self, what: str, waited: float, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(f"{what}: every worker stayed busy for {waited:g} s; retry shortly")
