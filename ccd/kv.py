"""The few key-value primitives the store needs, on Redis or in memory.

Why a layer this thin: the store's logic (what is written where, what goes in one
transaction) must be the same whatever keeps the bytes, or the embedded default and
production would fail differently. So :class:`ccd.store.Store` is written once against
this interface, a subset of Redis's own commands, and the in-memory backend implements
exactly those commands on dicts. Writes go in batches that apply atomically (a Redis
``MULTI``/``EXEC``; in memory, one synchronous apply with no ``await`` inside), which
is what makes "a list is either in or not" true on both.

Values are ``str``: the store encodes JSON itself, so both backends hold the very same
text.
"""

from __future__ import annotations

import fnmatch
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import redis.asyncio as aioredis
from sortedcontainers import SortedList

Op = tuple[Any, ...]
"""One write command: ``("HSET", key, field, value, ...)`` as Redis spells it."""


class KvError(Exception):
    """The backend refused or could not be reached; the message says which and why."""


class KvDataError(KvError):
    """A batch ran, but the backend refused a command in it (data not as expected).
    Unlike an unreachable backend, sending the same batch again cannot succeed."""


class Kv(ABC):
    """Atomic write batches and the reads the store uses."""

    @abstractmethod
    async def apply(self, ops: Sequence[Op]) -> list[Any]:
        """Run ``ops`` as one batch that nothing else interleaves with, and that is
        applied whole or not at all if the backend is unreachable. (A command Redis
        refuses inside the batch, :class:`KvDataError`, leaves the others applied:
        Redis has no rollback.)"""

    @abstractmethod
    async def hget(self, key: str, field: str) -> str | None: ...

    @abstractmethod
    async def hmget(self, key: str, fields: Sequence[str]) -> list[str | None]: ...

    @abstractmethod
    async def hgetall(self, key: str) -> dict[str, str]: ...

    @abstractmethod
    async def hlen(self, key: str) -> int: ...

    @abstractmethod
    def hscan(self, key: str, count: int = 2000) -> AsyncIterator[tuple[str, str]]:
        """Every field of a big hash, a page at a time (no single giant reply)."""

    @abstractmethod
    async def smembers(self, key: str) -> set[str]: ...

    @abstractmethod
    async def sismember(self, key: str, member: str) -> bool: ...

    @abstractmethod
    async def scard(self, key: str) -> int: ...

    @abstractmethod
    async def zrangebyscore(self, key: str, lo: float, hi: float) -> list[str]: ...

    @abstractmethod
    async def lrange(self, key: str, start: int, stop: int) -> list[str]: ...

    @abstractmethod
    async def incr(self, key: str) -> int: ...

    @abstractmethod
    async def keys(self, pattern: str) -> list[str]: ...

    async def close(self) -> None:
        return None


class RedisKv(Kv):
    """Redis (production). Connection errors become :class:`KvError`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._r: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=True)

    async def apply(self, ops: Sequence[Op]) -> list[Any]:
        if not ops:
            return []
        try:
            async with self._r.pipeline(transaction=True) as pipe:
                for op in ops:
                    pipe.execute_command(*op)
                return list(await pipe.execute())
        except aioredis.ResponseError as exc:
            # EXEC ran: Redis does not roll back a command that failed inside it (a key
            # of the wrong type). Retrying cannot help; the caller must not keep it.
            raise KvDataError(f"Redis refused a command: {exc}") from exc
        except aioredis.RedisError as exc:
            raise KvError(f"Redis: {exc}") from exc

    async def _call(self, *args: Any) -> Any:
        try:
            return await self._r.execute_command(*args)  # type: ignore[no-untyped-call]
        except aioredis.RedisError as exc:
            raise KvError(f"Redis: {exc}") from exc

    async def hget(self, key: str, field: str) -> str | None:
        value = await self._call("HGET", key, field)
        return None if value is None else str(value)

    async def hmget(self, key: str, fields: Sequence[str]) -> list[str | None]:
        if not fields:
            return []
        return list(await self._call("HMGET", key, *fields))

    async def hgetall(self, key: str) -> dict[str, str]:
        return dict(await self._call("HGETALL", key))

    async def hlen(self, key: str) -> int:
        return int(await self._call("HLEN", key))

    async def hscan(self, key: str, count: int = 2000) -> AsyncIterator[tuple[str, str]]:
        cursor = 0
        while True:
            cursor, page = await self._call("HSCAN", key, cursor, "COUNT", count)
            for field, value in page.items():
                yield field, value
            if int(cursor) == 0:
                return

    async def smembers(self, key: str) -> set[str]:
        return set(await self._call("SMEMBERS", key))

    async def sismember(self, key: str, member: str) -> bool:
        return bool(await self._call("SISMEMBER", key, member))

    async def scard(self, key: str) -> int:
        return int(await self._call("SCARD", key))

    async def zrangebyscore(self, key: str, lo: float, hi: float) -> list[str]:
        return list(await self._call("ZRANGEBYSCORE", key, _score(lo), _score(hi)))

    async def lrange(self, key: str, start: int, stop: int) -> list[str]:
        return list(await self._call("LRANGE", key, start, stop))

    async def incr(self, key: str) -> int:
        return int(await self._call("INCR", key))

    async def keys(self, pattern: str) -> list[str]:
        out = []
        try:
            async for key in self._r.scan_iter(match=pattern, count=1000):
                out.append(str(key))
        except aioredis.RedisError as exc:
            raise KvError(f"Redis: {exc}") from exc
        return out

    async def close(self) -> None:
        await self._r.aclose()


def _score(x: float) -> str:
    return "-inf" if x == -math.inf else "+inf" if x == math.inf else repr(float(x))


class MemoryKv(Kv):
    """The embedded default: the same commands on dicts, nothing on disk."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    async def apply(self, ops: Sequence[Op]) -> list[Any]:
        # Check every command before changing anything: a batch is all or nothing.
        for op in ops:
            if op[0] not in self._WRITES:
                raise KvError(f"unsupported command {op[0]!r}")
            if op[0] == "RENAME" and op[1] not in self._data:
                raise KvError(f"RENAME: no such key {op[1]!r}")
        return [self._WRITES[op[0]](self, *op[1:]) for op in ops]

    def _typed(self, key: str, kind: type) -> Any:
        value = self._data.get(key)
        if value is None:
            value = self._data[key] = kind()
        elif not isinstance(value, kind):
            raise KvError(f"{key!r} holds the wrong kind of value")
        return value

    def _hset(self, key: str, *pairs: str) -> int:
        h = self._typed(key, dict)
        added = 0
        for i in range(0, len(pairs), 2):
            added += pairs[i] not in h
            h[pairs[i]] = pairs[i + 1]
        return added

    def _hdel(self, key: str, *fields: str) -> int:
        h = self._data.get(key, {})
        n = sum(1 for f in fields if h.pop(f, None) is not None)
        self._drop_empty(key)
        return n

    def _sadd(self, key: str, *members: str) -> int:
        s = self._typed(key, set)
        before = len(s)
        s.update(members)
        return len(s) - before

    def _srem(self, key: str, *members: str) -> int:
        s = self._data.get(key, set())
        before = len(s)
        s.difference_update(members)
        self._drop_empty(key)
        return before - len(s)

    def _sunionstore(self, dest: str, *keys: str) -> int:
        union: set[str] = set()
        for k in keys:
            union |= self._data.get(k, set())
        self._data[dest] = union
        self._drop_empty(dest)
        return len(union)

    def _zadd(self, key: str, *pairs: Any) -> int:
        z = self._typed(key, SortedList)
        for i in range(0, len(pairs), 2):
            z.add((float(pairs[i]), str(pairs[i + 1])))
        return len(pairs) // 2

    def _zremrangebyscore(self, key: str, lo: Any, hi: Any) -> int:
        z = self._data.get(key)
        if z is None:
            return 0
        lo_f, hi_f = float(lo), float(hi)
        doomed = [e for e in z.irange((lo_f, ""), (hi_f, "\U0010ffff"))]
        for e in doomed:
            z.remove(e)
        self._drop_empty(key)
        return len(doomed)

    def _rpush(self, key: str, *values: str) -> int:
        lst = self._typed(key, list)
        lst.extend(values)
        return len(lst)

    def _ltrim(self, key: str, start: int, stop: int) -> bool:
        lst = self._data.get(key)
        if lst is not None:
            self._data[key] = lst[_slice(len(lst), int(start), int(stop))]
            self._drop_empty(key)
        return True

    def _rename(self, src: str, dest: str) -> bool:
        self._data[dest] = self._data.pop(src)
        return True

    def _del(self, *keys: str) -> int:
        return sum(1 for k in keys if self._data.pop(k, None) is not None)

    def _expire(self, key: str, seconds: Any) -> int:
        return int(key in self._data)  # nothing here outlives the process anyway

    def _persist(self, key: str) -> int:
        return int(key in self._data)

    def _incrby(self, key: str, n: Any) -> int:
        value = int(self._data.get(key, 0)) + int(n)
        self._data[key] = str(value)
        return value

    def _drop_empty(self, key: str) -> None:
        if key in self._data and not self._data[key]:
            del self._data[key]

    _WRITES: ClassVar[dict[str, Any]] = {
        "HSET": _hset,
        "HDEL": _hdel,
        "SADD": _sadd,
        "SREM": _srem,
        "SUNIONSTORE": _sunionstore,
        "ZADD": _zadd,
        "ZREMRANGEBYSCORE": _zremrangebyscore,
        "RPUSH": _rpush,
        "LTRIM": _ltrim,
        "RENAME": _rename,
        "DEL": _del,
        "EXPIRE": _expire,
        "PERSIST": _persist,
        "INCRBY": _incrby,
    }

    async def hget(self, key: str, field: str) -> str | None:
        value = self._data.get(key, {}).get(field)
        return None if value is None else str(value)

    async def hmget(self, key: str, fields: Sequence[str]) -> list[str | None]:
        h = self._data.get(key, {})
        return [h.get(f) for f in fields]

    async def hgetall(self, key: str) -> dict[str, str]:
        return dict(self._data.get(key, {}))

    async def hlen(self, key: str) -> int:
        return len(self._data.get(key, {}))

    async def hscan(self, key: str, count: int = 2000) -> AsyncIterator[tuple[str, str]]:
        items = list(self._data.get(key, {}).items())
        for i in range(0, len(items), count):
            for pair in items[i : i + count]:
                yield pair

    async def smembers(self, key: str) -> set[str]:
        return set(self._data.get(key, set()))

    async def sismember(self, key: str, member: str) -> bool:
        return member in self._data.get(key, set())

    async def scard(self, key: str) -> int:
        return len(self._data.get(key, set()))

    async def zrangebyscore(self, key: str, lo: float, hi: float) -> list[str]:
        z = self._data.get(key)
        if z is None:
            return []
        return [m for _, m in z.irange((lo, ""), (hi, "\U0010ffff"))]

    async def lrange(self, key: str, start: int, stop: int) -> list[str]:
        lst = self._data.get(key, [])
        return list(lst[_slice(len(lst), start, stop)])

    async def incr(self, key: str) -> int:
        return self._incrby(key, 1)

    async def keys(self, pattern: str) -> list[str]:
        return [k for k in self._data if fnmatch.fnmatchcase(k, pattern)]


def _slice(n: int, start: int, stop: int) -> slice:
    """Redis's inclusive, negative-aware LRANGE/LTRIM bounds as a Python slice."""
    if start < 0:
        start = max(0, n + start)
    if stop < 0:
        stop = n + stop
    return slice(start, max(start, stop + 1))


def open_kv(url: str | None) -> Kv:
    """``redis://…`` (or ``rediss://``, ``unix://``) for Redis; None or ``memory:`` for
    the embedded store."""
    if url is None or url in ("", "memory:", "memory"):
        return MemoryKv()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisKv(url)
    raise KvError(f"store URL {url!r}: use redis://host:port/db or memory:")
