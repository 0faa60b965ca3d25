# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""A queue is a namespace: the rule that names every key the project keeps for a job or a queue.

arq keeps a job's keys global to the Redis server (`arq:job:<id>`, `arq:result:<id>`, ...), so
two services on one Redis that both queue `order-42` read, replace and abort each other's job,
and their cron ticks collide. Here every queue has a key of its own that carries a Redis Cluster
hash tag, `{<QUEUE_PREFIX>:<queue>}` (`queue_key`), and every job id the project writes starts
with it (`namespaced_job_id`): `{shop:default}:order-42`. arq builds a job's keys as its prefix
plus the id, so those keys carry the queue's tag too (`arq:job:{shop:default}:order-42`), and
the rest of the queue's keys (below) start with the queue key. Nothing of one queue then shares
a key with another queue's, and a queue's keys all hash to one cluster slot (docs/deployment.md,
"Outgrowing one Redis").

The key layout, for a queue `Q` = `{<QUEUE_PREFIX>:<queue>}` and a job id `J` = `Q:<id>`:

    Q                               sorted set: the queue, job id -> start time (ms); arq's queue
    Q:health-check                  arq's health line, for `arq --check` (each worker rewrites it)
    Q:wake                          list: a token per job queued, which wakes a waiting worker
    Q:paused                        present while the queue is paused: who, since when (pause.py)
    Q:abort-requests                sorted set: running jobs asked to abort -> when (ms)
    Q:abort:J                       an abort's mark, "requested:<ms>" then "aborted:<ms>"
    Q:dead-letters                  list: jobs whose tries ran out, newest first
    Q:live-workers                  sorted set: the live workers -> when each one's beat expires
    Q:workers:<worker>              a worker's heartbeat: what it runs, since when
    Q:running:<worker>              set: the jobs a worker is running, for when it dies
    Q:recent, Q:recent-failures     lists: the last jobs' outcomes, for the dashboard
    Q:last-tries                    hash: each function's last try that ended (activity.py)
    Q:activity:<start>              hash: counts per 10 s bucket, for the dashboard
    Q:cron-claims:J                 a cron tick's claim: one worker runs it
    Q:missing-function:J            since when a job has waited for a worker that has its function
    Q:limited:J                     a job's limits, written with it (limits.py)
    Q:limit-wait:J                  why a limited job waits: its limit is full, or its rate turn
    Q:limit:<limit>:running         sorted set: a concurrency limit's leases -> when each runs out
    Q:limit:<limit>:waiting         sorted set: the jobs waiting for a lease, oldest first
    Q:limit:<limit>:next-start      a rate limit's next free turn (ms)
    Q:progress:J                    a job's latest progress report (progress.py)
    Q:workflow:W                    a chain or group (store/workflows.py): its kind and its jobs
    Q:input:J                       what a workflow's waiting job receives when it runs
    Q:handoffs                      hash: a workflow's moves to another queue, not made yet
    arq:job:J                       the job: function, arguments, enqueue time, tries
    arq:in-progress:J               set while a worker has it claimed
    arq:retry:J                     how many tries have started
    arq:result:J                    its outcome, kept WORKER_KEEP_RESULT seconds

Jobs queued by a plain arq client (`ArqRedis.enqueue_job` with arq's own pool) keep arq's ids and
keys; a worker runs them all the same, but they are arq's global keys, outside the namespace.
"""

import os
import re
from collections.abc import Mapping
from typing import Any

# The queue a job goes to when nothing names another.
DEFAULT_QUEUE = "default"
# A queue's name (QUEUES): what a key, a metric label and a command line take as they are.
QUEUE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
# The job ids the API looks up (api/dependencies.py's JobId), whole or without their queue: the
# ids jobs get (`{<QUEUE_PREFIX>:<queue>}:<id>`) with a random id, a cron tick's
# (`cron:<name>:<ms>`), a workflow's jobs' and those the API derives (job_requests.py) all fit.
JOB_ID_PATTERN = r"^[A-Za-z0-9._:{}-]+$"
JOB_ID_MAX_LENGTH = 256


def queue_key(prefix: str, queue: str) -> str:
    """The Redis key of `queue` in the namespace `prefix` (QUEUE_PREFIX): `{<prefix>:<queue>}`,
    the queue's sorted set and the start of every other key of the queue and its jobs."""
    return "{" + prefix + ":" + queue + "}"


def new_job_id() -> str:
    """A random job id: 32 hex digits, as arq's `uuid4().hex` gives, from `os.urandom` (128
    random bits, and about a quarter of uuid4's time, which counts in `enqueue_many`)."""
    return os.urandom(16).hex()


def namespaced_job_id(queue_name: str, job_id: str) -> str:
    """`job_id` in the queue whose key is `queue_name`: `<queue key>:<job_id>`; an id already in
    that queue is returned as it is."""
    if job_id.startswith(queue_name + ":"):
        return job_id
    return f"{queue_name}:{job_id}"


def queue_of(job_id: str) -> str | None:
    """The key of the queue a namespaced job id belongs to (`{shop:default}` for
    `{shop:default}:order-42`); None for an id without one (a plain arq client's)."""
    if not job_id.startswith("{"):
        return None
    end = job_id.find("}:")
    return job_id[: end + 1] if end > 1 else None


def queue_of_job(ctx: Mapping[str, Any]) -> str:
    """The key of the queue a running job came from, from its `ctx`: its id says; a plain arq
    client's id does not, and its job came from the worker's own queue (`ctx["queue_name"]`)."""
    return queue_of(ctx["job_id"]) or str(ctx["queue_name"])


def bare_job_id(job_id: str) -> str:
    """`job_id` without its queue's key: `order-42` for `{shop:default}:order-42`."""
    queue_name = queue_of(job_id)
    return job_id if queue_name is None else job_id[len(queue_name) + 1 :]


def abort_requests_key(queue_name: str) -> str:
    """The queue's abort requests for running jobs: job id -> when asked (ms)."""
    return f"{queue_name}:abort-requests"


def retry_of_key(queue_name: str, job_id: str) -> str:
    """The id of the job that `job_id` was queued again from (a dead letter's requeue, the
    dashboard's retry): `Q:retry-of:J`."""
    return f"{queue_name}:retry-of:{job_id}"
