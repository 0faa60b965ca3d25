# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Per-worker liveness: for `just worker-check` and container healthchecks, and to recover the
jobs of a worker that died.

arq's own health check is one key per queue, and any worker that stops deletes it (arq #291):
with two workers, stopping one makes the check fail although the other still runs. Here each
worker owns a key, `<queue>:workers:<host>:<pid>:<random>`, rewritten every `interval` seconds
with a lifetime of `interval + MARGIN_SECONDS`. A clean stop deletes the key at once; a worker
killed with SIGKILL (or frozen) drops out of the count within one interval plus the margin.

Each worker also lists the jobs it is running in `<queue>:running:<host>:<pid>:<random>`. arq
marks a running job "in progress" for the job's whole time limit plus 10 s (305 s + 10 s by
default), and no worker takes it while the mark lasts: a job whose worker was killed waits all
that time (arq #343). So every live worker, at start and then once per interval, looks for
running-lists whose worker's key has expired and removes the in-progress marks of their jobs;
they are due again at once, and the next claim runs them. The price: a worker that stalls for
longer than its heartbeat lifetime (a blocked event loop) may see its job start a second time
elsewhere. Jobs must be idempotent, as arq already asks.

Each beat also scores the worker in one sorted set per queue, `<queue>:live-workers`, by when
its key expires: counting or listing live workers is then a ZCOUNT or a ZRANGEBYSCORE, not a
SCAN of the keyspace (depth.py's `queue_stats`, read at every metrics scrape). Each beat drops
the members whose time has passed.

Once per interval each worker also drops abort requests for ids that have no job (job_handle.py):
arq never trims its abort set, and a stale request would drop a later job given the same id.

The running-list is written in the background, every GATHER_SECONDS at most, one write for
all the jobs that started or ended meanwhile (`RunningJobs`). A write per job would cost two
Redis round trips per job, about a fifth of a busy worker's time (bench/compare.py in the
template measures it). The price: a job whose worker is killed within GATHER_SECONDS of its
start is not listed yet, so it waits out arq's in-progress mark as it would without this module.
"""

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from .job_handle import drop_stale_abort_requests
from .records import is_wrong_type, read_or_skip, reply_or, skip, text, typed
from .workflows import apply_handoffs

logger = logging.getLogger(__name__)

MARGIN_SECONDS = 2.0
# Keys a SCAN of the keyspace looks at per call. The count SCAN reads the keyspace by, not how
# many keys match: Redis's default of 10 took one command per 10 keys of the whole database (a
# queue depth read 369 SCANs with 3,850 kept results).
KEYS_PER_SCAN = 1000
# How long changes to the running-list gather before they are written.
GATHER_SECONDS = 0.01


@dataclass(frozen=True)
class WorkerBeat:
    """What a live worker says about itself; `beat_at` is its latest beat (None from a worker
    of an older version)."""

    queue: str
    host: str
    pid: int
    started_at: str
    beat_at: str | None = None


def key_prefix(queue_name: str) -> str:
    return f"{queue_name}:workers:"


def running_prefix(queue_name: str) -> str:
    return f"{queue_name}:running:"


def live_workers_key(queue_name: str) -> str:
    """The sorted set of live workers' identities, scored by when each one's key expires (ms)."""
    return f"{queue_name}:live-workers"


# Atomic, so that of two workers reaping the same dead worker only one releases its jobs, and
# never after a live worker has started one again. A claimed job's score is when its in-progress
# mark expires (worker.py): it is set back to now (LT: a lower score only), so the job is due at
# once. KEYS: the dead worker's heartbeat key, its running-list, the queue; ARGV: arq's
# in-progress key prefix, now (ms). Returns how many jobs it released.
RELEASE_JOBS_OF_DEAD_WORKER = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local job_ids = redis.call('SMEMBERS', KEYS[2])
for _, job_id in ipairs(job_ids) do
  redis.call('DEL', ARGV[1] .. job_id)
  redis.call('ZADD', KEYS[3], 'XX', 'LT', ARGV[2], job_id)
end
redis.call('DEL', KEYS[2])
return #job_ids
"""


def release_jobs_of_dead_worker(
    queue_name: str, heartbeat_key: str | bytes, running_key: str | bytes
) -> tuple[str, int, str | bytes, str | bytes, str, str, str]:
    """The arguments of the EVAL that runs RELEASE_JOBS_OF_DEAD_WORKER, for any Redis client."""
    now_ms = str(int(time.time() * 1000))
    keys = (heartbeat_key, running_key, queue_name)
    return (RELEASE_JOBS_OF_DEAD_WORKER, len(keys), *keys, in_progress_key_prefix, now_ms)


class RunningJobs:
    """This worker's running-list in Redis, kept up to date by one write at a time.

    Jobs do not wait for it: `add` and `remove` note the change and return, and a background
    write sends every change noted since the previous write in one pipeline (one SADD, one
    SREM). A job that starts and ends between two writes never reaches Redis. Writes go one
    after the other, so a removal never overtakes its listing; a failed write's changes go into
    the next one, unless newer ones replaced them.
    """

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis = redis
        self.key = key
        self._changes: dict[str, bool] = {}  # job id -> listed?, for the next write
        self._never_sent: set[str] = set()  # jobs in _changes that Redis has not heard of
        self._writing: asyncio.Task[None] | None = None

    def add(self, job_id: str) -> None:
        if job_id not in self._changes:  # else it replaces a removal Redis must still get
            self._never_sent.add(job_id)
        self._change(job_id, listed=True)

    def remove(self, job_id: str) -> None:
        if job_id in self._never_sent:  # listed and unlisted before any write: nothing to send
            self._never_sent.discard(job_id)
            del self._changes[job_id]
            return
        self._change(job_id, listed=False)

    def send_pending(self) -> None:
        """Send changes a failed write left behind, without waiting for the next change: a stale
        listing would let a worker that reaps this one restart a job this id no longer names."""
        if self._changes and self._writing is None:
            self._writing = asyncio.create_task(self._write_all(), name="running-jobs")

    async def written(self) -> None:
        """Wait until every change noted so far has been sent (or its write has failed)."""
        while self._writing is not None:
            await asyncio.gather(asyncio.shield(self._writing), return_exceptions=True)

    def _change(self, job_id: str, listed: bool) -> None:
        self._changes[job_id] = listed
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_all(), name="running-jobs")

    async def _write_all(self) -> None:
        try:
            while self._changes:
                await asyncio.sleep(GATHER_SECONDS)  # one write for a busy moment's changes
                changes, self._changes = self._changes, {}
                self._never_sent.clear()  # sent now, or (if the write fails) maybe sent
                if not changes:
                    continue
                try:
                    await self._write(changes)
                except (RedisError, OSError) as error:
                    logger.warning("could not update the running-jobs list: %s", error)
                    # Send them again with the next change; a newer change to a job wins.
                    self._changes = {**changes, **self._changes}
                    return
        finally:
            self._writing = None

    async def _write(self, changes: dict[str, bool]) -> None:
        listed = [job_id for job_id, is_listed in changes.items() if is_listed]
        unlisted = [job_id for job_id, is_listed in changes.items() if not is_listed]
        async with self.redis.pipeline(transaction=False) as pipe:
            if listed:
                pipe.sadd(self.key, *listed)
            if unlisted:
                pipe.srem(self.key, *unlisted)
            await pipe.execute()


class Heartbeat:
    """Keeps this worker's key alive from a background task while the worker runs."""

    def __init__(self, redis: Redis, queue_name: str, interval: float) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self.interval = interval
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.key = key_prefix(queue_name) + self.identity
        self.running_key = running_prefix(queue_name) + self.identity
        self.running_jobs = RunningJobs(redis, self.running_key)
        self.about = {
            "queue": queue_name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._beat()  # visible before the worker takes its first job
        await self.release_jobs_of_dead_workers()
        await apply_handoffs(self.redis, self.queue_name)
        self._task = asyncio.create_task(self._beat_forever(), name="heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.running_jobs.written()  # or a late write would bring the list back
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(self.key, self.running_key)
            pipe.zrem(live_workers_key(self.queue_name), self.identity)
            await pipe.execute()

    def job_started(self, job_id: str) -> None:
        self.running_jobs.add(job_id)

    def job_ended(self, job_id: str) -> None:
        self.running_jobs.remove(job_id)

    async def release_jobs_of_dead_workers(self) -> int:
        """Let the jobs of workers whose heartbeat expired run again; returns how many."""
        released = 0
        prefix = running_prefix(self.queue_name)
        async for raw_key in self.redis.scan_iter(
            match=escape_glob(prefix) + "*", count=KEYS_PER_SCAN
        ):
            # As bytes: a key that is not UTF-8 is still a key (and any other worker's name).
            running_key = raw_key.encode() if isinstance(raw_key, str) else raw_key
            identity = running_key[len(prefix.encode()) :]
            heartbeat_key = key_prefix(self.queue_name).encode() + identity
            try:
                call = release_jobs_of_dead_worker(self.queue_name, heartbeat_key, running_key)
                count = await self.redis.eval(*call)  # type: ignore[misc, arg-type]
            except ResponseError as error:  # one key of another type must not stop the rest
                if not is_wrong_type(error):
                    raise
                skip("running", text_or_repr(running_key), error)
                continue
            if count:
                logger.warning(
                    "worker %s stopped beating: %d of its jobs will run again",
                    text_or_repr(identity), count,
                )  # fmt: skip
                released += int(count)
        return released

    async def _beat(self) -> None:
        lifetime_ms = int((self.interval + MARGIN_SECONDS) * 1000)
        beat_at = datetime.now(UTC).isoformat(timespec="seconds")
        payload = json.dumps({**self.about, "beat_at": beat_at})
        now_ms = int(time.time() * 1000)
        live = live_workers_key(self.queue_name)
        async with self.redis.pipeline(transaction=False) as pipe:  # one round trip
            pipe.set(self.key, payload, px=lifetime_ms)
            pipe.zadd(live, {self.identity: now_ms + lifetime_ms})
            pipe.zremrangebyscore(live, "-inf", now_ms)  # workers that stopped beating
            await pipe.execute()

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._beat()
                self.running_jobs.send_pending()
                await self.release_jobs_of_dead_workers()
                await drop_stale_abort_requests(self.redis, self.queue_name)
                # A workflow's moves to another queue that a dead worker recorded and did not
                # run (store/workflows.py).
                await apply_handoffs(self.redis, self.queue_name)
            except (RedisError, OSError) as error:
                # Keep beating: the key expires by itself if Redis stays away.
                logger.warning("heartbeat to Redis failed: %s", error)


async def live_workers(redis: Redis, queue_name: str, host: str | None = None) -> list[WorkerBeat]:
    """The workers on `queue_name` whose key is alive, optionally only those on `host`."""
    pattern = escape_glob(key_prefix(queue_name) + (f"{host}:" if host else "")) + "*"
    keys = [key async for key in redis.scan_iter(match=pattern, count=KEYS_PER_SCAN)]
    if not keys:
        return []
    payloads = await redis.mget(keys)
    # A key can expire between SCAN and MGET: skip the gaps (MGET also reads a key of another
    # type as a gap). A beat that cannot be read is skipped (records.py).
    beats = (
        read_or_skip("heartbeat", text_or_repr(key), read_beat, payload)
        for key, payload in zip(keys, payloads, strict=True)
        if payload is not None
    )
    return [beat for beat in beats if beat is not None]


def read_beat(payload: bytes) -> WorkerBeat:
    """A heartbeat as `Heartbeat` writes it; raises ValueError (records.py's Unreadable, or
    a decoding error) for anything else, such as a time that is not ISO 8601."""
    beat = typed(WorkerBeat, json.loads(payload))
    for moment in (beat.started_at, beat.beat_at):
        if moment is not None:
            datetime.fromisoformat(moment)
    return beat


def live_identities(queue_name: str, members: list[bytes]) -> list[str]:
    """The identities in `members` of the live-workers set, as text; a member that is not
    UTF-8 (no worker wrote it) is skipped (records.py)."""
    identities = []
    for member in members:
        try:
            identities.append(text(member))
        except UnicodeDecodeError as error:
            skip("live-workers", live_workers_key(queue_name), error, member)
    return identities


async def running_job_ids(redis: Redis, running_keys: list[str]) -> set[bytes]:
    """The ids in the running-lists `running_keys`, in one SUNION; a list of another type is
    skipped (records.py), and then each is read apart, so the others still count."""
    try:
        return set(await redis.sunion(running_keys))  # type: ignore[misc]
    except ResponseError as error:
        if not is_wrong_type(error):
            raise
    async with redis.pipeline(transaction=False) as pipe:
        for key in running_keys:
            pipe.smembers(key)
        replies = await pipe.execute(raise_on_error=False)
    ids: set[bytes] = set()
    for key, reply in zip(running_keys, replies, strict=True):
        ids.update(reply_or("running", key, reply, set()))
    return ids


def text_or_repr(key: bytes | str) -> str:
    """A key's name for a log line: its text, or its repr when it is not UTF-8."""
    try:
        return text(key)
    except UnicodeDecodeError:
        return repr(key)


def escape_glob(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)
