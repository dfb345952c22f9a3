"""One pull-request comment kept up to date through GitHub's REST API.

`promptctl ci comment` posts the review report with it. The comment is found again by a
marker on its first line, looked up across every page of the pull request's comments (the
API answers 30 a page by default, so a lookup of the first page alone posts a duplicate
once a pull request has more), and updated in place; a body over GitHub's limit of 65,536
characters is cut at a line with a note rather than refused. A token that may not write
(a pull request from a fork, or Dependabot's, gets a read-only one) is not a failure of
the job: the caller is told so and prints a notice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from promptctl.registry.errors import RegistryError, UsageError

# GitHub refuses a comment body of more than 65,536 characters; stay a little below it.
GITHUB_BODY_LIMIT = 65_536
DEFAULT_MAX_CHARS = 65_000
DEFAULT_MARKER = "<!-- promptctl review -->"
# Who posts with the workflow's GITHUB_TOKEN. Only a comment of theirs is ours: anyone may
# write a comment that starts with the marker, and updating it would fail (a token cannot
# edit another's comment) or, with a broader token, overwrite a person's words.
DEFAULT_AUTHOR = "github-actions[bot]"
PAGE_SIZE = 100  # the API's largest page: fewest requests on a busy pull request
API_VERSION = "2022-11-28"


# Not in registry.errors: it is the GitHub transport's error, like cli/remote.py's
# RemoteError. A RegistryError so that the CLI's one handler prints it.
class GitHubError(RegistryError):
    """GitHub's API refused a request or could not be reached."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PullRequest:
    """Where the comment goes, and whether the pull request comes from a fork."""

    api_url: str
    repository: str  # owner/name
    number: int
    from_fork: bool = False


@dataclass(frozen=True)
class Posted:
    """What `upsert_comment` did: 'created', 'updated', 'unchanged' or 'skipped'."""

    action: str
    comment_id: int | None = None
    url: str | None = None
    truncated: bool = False
    reason: str = ""


def pull_request_from_env(
    env: Mapping[str, str] | None = None,
    *,
    number: int | None = None,
    repository: str | None = None,
) -> PullRequest:
    """Read the pull request from GitHub Actions' variables and its event file."""
    env = os.environ if env is None else env
    event = _event(env.get("GITHUB_EVENT_PATH"))
    pull = event.get("pull_request") or {}
    repository = repository or env.get("GITHUB_REPOSITORY")
    if not repository or "/" not in repository:
        raise UsageError(
            "no repository to comment on: set GITHUB_REPOSITORY (owner/name) or pass --repository"
        )
    if number is None:
        number = pull.get("number") or event.get("number")
    if number is None:
        raise UsageError(
            "no pull request number: run on a pull_request event (GITHUB_EVENT_PATH) or pass --pr N"
        )
    head_repo = ((pull.get("head") or {}).get("repo") or {}).get("full_name")
    return PullRequest(
        api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
        repository=repository,
        number=int(number),
        from_fork=bool(head_repo) and head_repo != repository,
    )


def _event(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the event file GITHUB_EVENT_PATH={path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def cap_body(body: str, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str, bool]:
    """Cut `body` at a line so that it fits in `max_chars`, closing what the cut left open.

    Returns the text and whether it was cut. A fenced code block or a `<details>` fold cut
    in the middle is closed, so the rest of the comment does not render as code.
    """
    if len(body) <= max_chars:
        return body, False
    note = (
        f"\n\n> **Cut at {max_chars:,} characters** (GitHub's comment limit is "
        f"{GITHUB_BODY_LIMIT:,}); {len(body):,} in full. The whole report is in this "
        "run's job summary.\n"
    )
    room = max_chars - len(note) - 200  # closers for open fences and folds
    kept = body[:room]
    if "\n" in kept:
        kept = kept[: kept.rindex("\n") + 1]
    closers = ""
    if _open_fence(kept):
        closers += "\n" + _open_fence(kept) + "\n"
    opened = kept.count("<details") - kept.count("</details>")
    closers += "\n</details>\n" * max(0, min(opened, 20))
    return kept + closers + note, True


def _open_fence(text: str) -> str:
    """The fence of a code block left open at the end of `text`, or ''."""
    fence = ""
    for line in text.splitlines():
        stripped = line.lstrip()
        mark = stripped[:3]
        if mark in ("```", "~~~"):
            run = len(stripped) - len(stripped.lstrip(mark[0]))
            if not fence:
                fence = mark[0] * run
            elif stripped.startswith(fence) and not stripped[len(fence) :].strip():
                fence = ""
    return fence


class CommentClient:
    """The few calls of GitHub's issue-comments API that keep one comment up to date."""

    def __init__(self, pull: PullRequest, token: str, *, timeout: float = 30.0) -> None:
        self.pull = pull
        self.http = httpx.Client(
            base_url=pull.api_url,
            timeout=timeout,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {token}",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "promptctl-ci",
            },
        )

    def close(self) -> None:
        self.http.close()

    def find(self, marker: str, author: str | None = DEFAULT_AUTHOR) -> dict[str, Any] | None:
        """Return the oldest comment whose body starts with `marker`, across every page,
        written by `author` (None: by anyone)."""
        url: str | None = (
            f"/repos/{self.pull.repository}/issues/{self.pull.number}/comments?per_page={PAGE_SIZE}"
        )
        while url:
            response = self._call("GET", url)
            for comment in response.json():
                # The start, not anywhere: a reply quoting the report carries the marker
                # too, after "> ", and must never be overwritten.
                if (comment.get("body") or "").startswith(marker) and (
                    author is None or (comment.get("user") or {}).get("login") == author
                ):
                    return comment
            url = response.links.get("next", {}).get("url")
        return None

    def create(self, body: str) -> dict[str, Any]:
        path = f"/repos/{self.pull.repository}/issues/{self.pull.number}/comments"
        return self._call("POST", path, json={"body": body}).json()

    def update(self, comment_id: int, body: str) -> dict[str, Any]:
        path = f"/repos/{self.pull.repository}/issues/comments/{comment_id}"
        return self._call("PATCH", path, json={"body": body}).json()

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise GitHubError(
                503, f"cannot reach GitHub's API at {self.pull.api_url}: {exc}"
            ) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("message") or response.text
            except ValueError:
                detail = response.text[:200] or response.reason_phrase
            raise GitHubError(
                response.status_code,
                f"GitHub answered {response.status_code} to {method} {response.url.path}: {detail}",
            )
        return response


def upsert_comment(
    client: CommentClient,
    body: str,
    *,
    marker: str = DEFAULT_MARKER,
    max_chars: int = DEFAULT_MAX_CHARS,
    author: str | None = DEFAULT_AUTHOR,
) -> Posted:
    """Create the marked comment, or update `author`'s in place (None: anyone's); skip
    when the token may not write."""
    if not body.startswith(marker):
        body = f"{marker}\n{body}"
    body, truncated = cap_body(body, max_chars)
    try:
        previous = client.find(marker, author)
        if previous is None:
            made = client.create(body)
            return Posted("created", made.get("id"), made.get("html_url"), truncated)
        if previous.get("body") == body:
            return Posted("unchanged", previous["id"], previous.get("html_url"), truncated)
        made = client.update(previous["id"], body)
        return Posted("updated", made.get("id"), made.get("html_url"), truncated)
    except GitHubError as exc:
        if exc.status not in (401, 403):
            raise
        why = (
            "a pull request from a fork runs with a read-only token"
            if client.pull.from_fork
            else "the token may not write comments (Dependabot's is read-only; otherwise give "
            "the job `permissions: pull-requests: write`)"
        )
        return Posted("skipped", truncated=truncated, reason=f"{why}; {exc}")
