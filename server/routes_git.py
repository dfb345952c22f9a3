"""The server's clone of the prompt repository: which commit it has, and fetching its remote.

`GET /v1/git` says which commit the clone has on the tracked branch, the remote it follows
and how the last fetches went (also in `/readyz`). `POST /v1/git/fetch` fetches now and
fast-forwards the tracked branch: authorised like a release action (a `release` token), or
sent by GitHub as a push webhook signed with PROMPTCTL_GIT_WEBHOOK_SECRET
(`X-Hub-Signature-256`; a missing or bad signature is a 401 and nothing is fetched). The
fetch runs in a worker thread, never on the event loop; a failure is a 502 problem and
serving goes on from what the clone has.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from promptctl.server.deps import ContextDep
from promptctl.server.openapi import answers
from promptctl.server.schemas import GitStatusShape

router = APIRouter(prefix="/v1", tags=["git"])


@router.get(
    "/git",
    summary="The commit the server has, and how following its remote goes",
    **answers(GitStatusShape, 401, 403, 503),
)
def git_status(request: Request, ctx: ContextDep) -> dict[str, Any]:
    ctx.authorize(request, "read")
    return ctx.registry.git_status().to_json()


@router.post(
    "/git/fetch",
    summary="Fetch the remote now (also a GitHub push webhook)",
    **answers(GitStatusShape, 401, 403, 409, 413, 415, 502, 503, description="Fetched"),
)
async def fetch(request: Request, ctx: ContextDep) -> dict[str, Any]:
    signature = request.headers.get("x-hub-signature-256")
    if signature is not None or "x-github-event" in request.headers:
        # GitHub sends no bearer token: the signature over the body is the authority.
        ctx.registry.check_push_webhook(await request.body(), signature)
    else:
        ctx.authorize(request, "release")
    status = await run_in_threadpool(ctx.registry.fetch_remote)
    return status.to_json()
