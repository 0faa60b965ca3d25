# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""`just queue-migrate [OLD_QUEUE_NAME]`: a project's jobs, moved from the layout before queue
namespaces into its queue's namespace (keys.py; docs/updates.md, "Queue namespaces").

Before, a project had one queue whose key was QUEUE_NAME (`<project-slug>:queue` by default),
its job ids were bare (`order-42`), and arq kept each job's keys global: `arq:job:order-42`,
`arq:retry:...`, `arq:in-progress:...`, `arq:result:...`. Now the queue is `{<QUEUE_PREFIX>:default}`
and a job's id starts with it. `move_queue` moves:

- first, the jobs of old workers that were killed: their running-lists (heartbeat.py) are read
  and their jobs made due at once, as a live worker of the old version would have done, instead
  of waiting out arq's in-progress mark under their new ids;
- every job in the old queue, due or deferred, one script per job: its four arq keys are
  renamed to the new id's (RENAME keeps a key's lifetime), the new id joins the new queue with the
  job's score (when it is due), and the old id leaves the old queue. A job whose new id is taken
  already (a job or a result of that id in the new queue) stays where it is, counted as left;
- the results of finished jobs: `arq:result:<id>` keys with a bare id whose stored queue ("q") is
  the old queue. Results of other services on the same Redis have another "q" and stay;
- the dead letters, appended, oldest last, to those the new queue may have already.

What is moved once is not found again, so a second run moves nothing. The scripts touch keys of
two queues at once, which the old layout (one Redis, never a cluster) allows.
"""

import json
from dataclasses import dataclass

from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from redis.asyncio import Redis

from ..keys import namespaced_job_id, queue_of
from ..store.dead_letters import dead_letter_key
from ..store.heartbeat import Heartbeat, escape_glob
from ..store.job_writes import WAKE_TOKENS_KEPT, wake_key

# The arq keys of a job, by prefix: each is renamed with the job.
JOB_KEY_PREFIXES = (job_key_prefix, retry_key_prefix, in_progress_key_prefix, result_key_prefix)

# KEYS: the old queue, the new queue, the job's four keys (JOB_KEY_PREFIXES) under its old id, the
# same under its new id, the new queue's wake-up list. ARGV: the old id, the new id, how many
# wake-up tokens the list keeps (job_writes.py). Returns 1 (moved), 0 (not in the old queue any
# more) or -1 (left: its new id is taken).
MOVE_JOB = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
if redis.call('ZSCORE', KEYS[2], ARGV[2]) or redis.call('EXISTS', KEYS[7], KEYS[10]) > 0 then
  return -1
end
for i = 3, 6 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('RENAME', KEYS[i], KEYS[i + 4]) end
end
redis.call('ZADD', KEYS[2], score, ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('LPUSH', KEYS[11], '1') > tonumber(ARGV[3]) then redis.call('RPOP', KEYS[11]) end
return 1
"""

# KEYS: the result under its old id, under its new id. ARGV: the result as read when it was
# judged the old queue's. Returns 1 (moved), 0 (gone or changed since) or -1 (left: taken).
MOVE_RESULT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
"""

# KEYS: the old dead letters, the new ones (lists, newest first). Each old record goes to the
# end of the new list, in order: they are older than any the new queue has. Returns how many.
MOVE_DEAD_LETTERS = """
if redis.call('TYPE', KEYS[1]).ok ~= 'list' then return 0 end
local new_type = redis.call('TYPE', KEYS[2]).ok
if new_type ~= 'list' and new_type ~= 'none' then return 0 end
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do moved = moved + 1 end
return moved
"""

BATCH = 500


@dataclass
class Moved:
    """What `move_queue` moved, and what it left because the new id was taken."""

    jobs: int = 0
    results: int = 0
    dead_letters: int = 0
    jobs_left: int = 0
    results_left: int = 0

    def count(self, moved_attribute: str, left_attribute: str, replies: list[int]) -> None:
        setattr(self, moved_attribute, getattr(self, moved_attribute) + replies.count(1))
        setattr(self, left_attribute, getattr(self, left_attribute) + replies.count(-1))


async def queue_type(redis: Redis, old_queue: str) -> str:
    """The Redis type of the old queue's key: "zset", or "none" when it has no jobs."""
    kind = await redis.type(old_queue)
    return kind.decode() if isinstance(kind, bytes) else str(kind)


async def move_queue(redis: Redis, old_queue: str, new_queue: str) -> Moved:
    moved = Moved()
    # What each live worker does once per beat, done once for the old queue (nothing happens to
    # the jobs of a worker whose heartbeat is alive: `--force`). It writes nothing of its own.
    await Heartbeat(redis, old_queue, interval=1).release_jobs_of_dead_workers()
    await _move_jobs(redis, old_queue, new_queue, moved)
    await _move_results(redis, old_queue, new_queue, moved)
    letters = await redis.eval(  # type: ignore[misc]
        MOVE_DEAD_LETTERS, 2, dead_letter_key(old_queue), dead_letter_key(new_queue)
    )
    moved.dead_letters = int(letters)
    return moved


async def _move_jobs(redis: Redis, old_queue: str, new_queue: str, moved: Moved) -> None:
    # ZSCAN returns every id there from start to end, some of them twice (the script then
    # answers 0), while the scripts remove them.
    batch: list[str] = []
    async for raw_id, _ in redis.zscan_iter(old_queue, count=BATCH):
        job_id = _text(raw_id)
        if job_id is None:  # not UTF-8: not an id the project wrote
            continue
        batch.append(job_id)
        if len(batch) >= BATCH:
            await _move_job_batch(redis, old_queue, new_queue, batch, moved)
            batch = []
    if batch:
        await _move_job_batch(redis, old_queue, new_queue, batch, moved)


async def _move_job_batch(
    redis: Redis, old_queue: str, new_queue: str, job_ids: list[str], moved: Moved
) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            new_id = namespaced_job_id(new_queue, job_id)
            keys = (
                old_queue,
                new_queue,
                *(prefix + job_id for prefix in JOB_KEY_PREFIXES),
                *(prefix + new_id for prefix in JOB_KEY_PREFIXES),
                wake_key(new_queue),
            )
            pipe.eval(MOVE_JOB, len(keys), *keys, job_id, new_id, str(WAKE_TOKENS_KEPT))
        replies = await pipe.execute()
    moved.count("jobs", "jobs_left", [int(reply) for reply in replies])


async def _move_results(redis: Redis, old_queue: str, new_queue: str, moved: Moved) -> None:
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=escape_glob(result_key_prefix) + "*", count=BATCH):
        batch.append(key)
        if len(batch) >= BATCH:
            await _move_result_batch(redis, old_queue, new_queue, batch, moved)
            batch = []
    if batch:
        await _move_result_batch(redis, old_queue, new_queue, batch, moved)


async def _move_result_batch(
    redis: Redis, old_queue: str, new_queue: str, keys: list[bytes], moved: Moved
) -> None:
    job_ids = []
    for key in keys:
        job_id = _text(key[len(result_key_prefix) :])
        if job_id is not None and queue_of(job_id) is None:
            job_ids.append(job_id)
    if not job_ids:
        return
    # MGET reads a key of another type as a gap, as one that expired since the SCAN.
    payloads = await redis.mget([result_key_prefix + job_id for job_id in job_ids])
    async with redis.pipeline(transaction=False) as pipe:
        for job_id, payload in zip(job_ids, payloads, strict=True):
            result = None if payload is None else _result_of(old_queue, payload)
            if result is not None:
                old_key = result_key_prefix + job_id
                new_key = result_key_prefix + namespaced_job_id(new_queue, job_id)
                pipe.eval(MOVE_RESULT, 2, old_key, new_key, result)
        replies = await pipe.execute()
    moved.count("results", "results_left", [int(reply) for reply in replies])


def _result_of(queue_name: str, payload: bytes) -> str | None:
    """The result as text if it says its job ran on `queue_name` ("q", as arq writes it); None
    for another queue's, or for one that is not JSON (another service's pickle, say)."""
    try:
        text = payload.decode()
        result = json.loads(text)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError too
        return None
    return text if isinstance(result, dict) and result.get("q") == queue_name else None


def _text(raw: bytes) -> str | None:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None
