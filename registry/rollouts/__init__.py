"""Automated rollouts: a canary stepped up by a policy kept in git, judged by the analysis.

`policy` reads the policies of promptctl.toml; `service` starts, pauses, resumes, ends
and reports rollouts, each snapshotting its policy into the database; `controller` is the
loop inside the server that judges every live rollout on an interval and advances, holds,
pauses or rolls it back, one replica at a time.
"""
