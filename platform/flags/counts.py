"""Evaluation counts, batched: an OFREP answer adds to a counter in its own process, and nothing else on the request
path; a daemon thread per process pushes what has gathered to one Redis hash once a second (one pipeline), and the
beat task `flags.flush_evaluation_counts` moves the hash into PostgreSQL (evaluation_counts_flush, below: the counts'
writes live here with their buffer rather than in services.py, since no person makes them).

No request waits on counting, however many flags a bulk answer holds: the cost on the hot path is a lock and a few
dictionary updates. What a process has not pushed yet is lost if it is killed (at most a second's counts); a process
that exits normally pushes them on its way out. Without Redis (the embedded setup) the thread writes the batch to
the database itself, every LOCAL_WRITE_SECONDS.

The hash's fields: `c|<day>|<service id>|<environment id>|<flag key>|<variant>` → evaluations that day (UTC), and
`t|<service id>|<environment id>|<flag key or *>` → the unix time of the latest evaluation (`*`: a bulk answer,
every flag of the set), raised to the newest value by a script so that a slow process never moves it back.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection, transaction
from django.db.models import Q
from redis.exceptions import NoScriptError

from deployments.models import Environment
from flags.models import EvaluationCount, Flag, FlagSetting
from portal.cache import script_keys

HASH = "flags:evals"
PUSH_SECONDS = 1.0
LOCAL_WRITE_SECONDS = 10.0
DEFAULT = ""  # the variant of an answer without one: the SDK applies its code default

_lock = threading.Lock()
_counts: Counter[str] = Counter()
_seen: dict[str, int] = {}
_pusher_pid: int | None = None


def record(service_id: int, environment_id: int, answers: Iterable[tuple[str, str]], *, whole_set: bool) -> None:
    """Count OFREP answers, (flag key, variant served) each; `whole_set` for a bulk answer."""
    now = time.time()
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    prefix = f"c|{day}|{service_id}|{environment_id}|"
    seen = f"t|{service_id}|{environment_id}|"
    with _lock:
        for key, variant in answers:
            _counts[f"{prefix}{key}|{variant}"] += 1
            if not whole_set:
                _seen[seen + key] = int(now)
        if whole_set:
            _seen[seen + "*"] = int(now)
    if _pusher_pid != os.getpid():
        _pusher_start()


def touch(service_id: int, environment_id: int) -> None:
    """A bulk poll answered 304: the client still uses every flag of the set, though nothing was evaluated."""
    record(service_id, environment_id, [], whole_set=True)


def take() -> tuple[dict[str, int], dict[str, int]]:
    """What this process has gathered since the last take: (counts, latest times)."""
    global _counts, _seen
    with _lock:
        counts, seen = _counts, _seen
        _counts, _seen = Counter(), {}
    return dict(counts), seen


def push() -> None:
    """Move this process's counts to the shared hash (Redis) or, without Redis, straight into the database."""
    counts, seen = take()
    if not counts and not seen:
        return
    try:
        if isinstance(caches["default"], RedisCache):
            hash_add(counts, seen)
        else:
            _write(counts, seen)
    except Exception:
        _restore(counts, seen)  # kept for the next push
        raise


def _write(counts: dict[str, int], seen: dict[str, int]) -> None:
    from django.db import close_old_connections

    try:
        evaluation_counts_write(counts=counts, seen=seen)
    finally:
        close_old_connections()


def _restore(counts: dict[str, int], seen: dict[str, int]) -> None:
    with _lock:
        _counts.update(counts)
        for field, moment in seen.items():
            _seen[field] = max(moment, _seen.get(field, 0))


def hash_add(counts: dict[str, int], seen: dict[str, int]) -> None:
    """Add counts to the shared hash and raise its latest times, atomically (one script, one round trip)."""
    client, keys = script_keys([HASH])
    args: list[Any] = [len(counts)]
    for field, amount in counts.items():
        args += [field, amount]
    for field, moment in seen.items():
        args += [field, moment]
    try:
        client.evalsha(_ADD_SHA, 1, *keys, *args)
    except NoScriptError:
        client.eval(_ADD_SCRIPT, 1, *keys, *args)


def hash_drain() -> tuple[dict[str, int], dict[str, int]]:
    """Read and empty the shared hash in one transaction: (counts, latest times)."""
    client, (name,) = script_keys([HASH])
    pipe = client.pipeline(transaction=True)
    pipe.hgetall(name)
    pipe.delete(name)
    raw, _deleted = pipe.execute()
    counts: dict[str, int] = {}
    seen: dict[str, int] = {}
    for field, value in raw.items():
        text = field.decode()
        (counts if text.startswith("c|") else seen)[text] = int(value)
    return counts, seen


def evaluation_counts_flush() -> int:
    """The beat task's work: move the shared hash into the database; returns how many evaluations it moved. If the
    write fails, the counts go back into the hash for the next run. Without Redis there is no hash: each process
    writes its own counts (push), and this has nothing to move."""
    if not isinstance(caches["default"], RedisCache):
        return 0
    counts, seen = hash_drain()
    if not counts and not seen:
        return 0
    try:
        evaluation_counts_write(counts=counts, seen=seen)
    except Exception:
        hash_add(counts, seen)
        raise
    return sum(counts.values())


@transaction.atomic
def evaluation_counts_write(*, counts: dict[str, int], seen: dict[str, int]) -> None:
    """Add a batch of counts to the daily rows (one upsert for all of them) and move each setting's last evaluation
    time forward. Counts of flags or environments deleted since are dropped."""
    rows: list[tuple[str, int, int, str, str, int]] = []
    for field, amount in counts.items():
        _c, day, service, environment, key, variant = field.split("|", 5)
        rows.append((day, int(service), int(environment), key, variant, amount))
    moments: list[tuple[int, int, str, int]] = []
    for field, moment in seen.items():
        _t, service, environment, key = field.split("|", 3)
        moments.append((int(service), int(environment), key, moment))
    service_ids = {row[1] for row in rows} | {moment[0] for moment in moments}
    keys = {row[3] for row in rows} | {moment[2] for moment in moments}
    flag_ids = {
        (service_id, key): pk
        for service_id, key, pk in Flag.objects.filter(service_id__in=service_ids, key__in=keys).values_list(
            "service_id", "key", "pk"
        )
    }
    environment_ids = set(Environment.objects.values_list("pk", flat=True))
    values = [
        (flag_ids[(service_id, key)], environment_id, day, variant[:100], amount)
        for day, service_id, environment_id, key, variant, amount in rows
        if (service_id, key) in flag_ids and environment_id in environment_ids
    ]
    if values:
        table = EvaluationCount._meta.db_table
        with connection.cursor() as cursor:
            # One statement for the batch; PostgreSQL and SQLite both speak this upsert.
            cursor.executemany(
                f"INSERT INTO {table} (flag_id, environment_id, day, variant, count) VALUES (%s, %s, %s, %s, %s) "
                f"ON CONFLICT (flag_id, environment_id, day, variant) DO UPDATE SET count = {table}.count + "
                "EXCLUDED.count",
                values,
            )
    for service_id, environment_id, key, moment in moments:
        at = datetime.fromtimestamp(moment, tz=UTC)
        settings = FlagSetting.objects.filter(environment_id=environment_id)
        if key == "*":
            settings = settings.filter(flag__service_id=service_id)
        elif (service_id, key) in flag_ids:
            settings = settings.filter(flag_id=flag_ids[(service_id, key)])
        else:
            continue
        settings.filter(Q(last_evaluated_at__isnull=True) | Q(last_evaluated_at__lt=at)).update(last_evaluated_at=at)


def _pusher_start() -> None:
    """One pusher thread per process, started by the first count (so after a fork, in the process that counts)."""
    global _pusher_pid
    with _lock:
        if _pusher_pid == os.getpid():
            return
        _pusher_pid = os.getpid()
    on_redis = isinstance(caches["default"], RedisCache)
    interval = PUSH_SECONDS if on_redis else LOCAL_WRITE_SECONDS
    threading.Thread(target=_pusher, args=(interval,), name="flags-evaluation-counts", daemon=True).start()
    atexit.register(_push_quietly)


def _pusher(interval: float) -> None:
    while True:
        time.sleep(interval)
        _push_quietly()


def _push_quietly() -> None:
    try:
        push()
    except Exception:  # noqa: BLE001 - counting must never take a web process down; the next push tries again
        import structlog

        structlog.get_logger(__name__).warning("flags.counts_push_failed", exc_info=True)


# HINCRBY each count field, then raise each time field to its new value where that is later: one atomic command.
_ADD_SCRIPT = """
local n = tonumber(ARGV[1])
for i = 2, 1 + 2 * n, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
for i = 2 + 2 * n, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if not old or tonumber(old) < tonumber(ARGV[i + 1]) then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 0
"""
_ADD_SHA = hashlib.sha1(_ADD_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by their SHA-1
