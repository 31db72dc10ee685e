#!/usr/bin/env python3
"""An etcd v3 scenario driven by an independent Python client (aetcd, gRPC).

Runs put/get, txn, lease, watch and lock steps against the cluster named by
--endpoints (host:port,host:port,...). Every step asserts what etcd's API
promises; the first mismatch stops the run with a message naming the step and
a non-zero exit. The same script passes against etcd itself, so a failure
against synod is synod's.

Exit codes: 0 pass, 1 a check failed or the client raised, 2 bad usage,
3 the client package is missing.
"""

import argparse
import asyncio
import os
import sys
import time
import traceback

try:
    import aetcd
    import aetcd.rtypes
except ImportError as e:  # the Rust test turns this into a skip notice
    print(f"aetcd not importable: {e}", file=sys.stderr)
    sys.exit(3)

# Every RPC gets this deadline (seconds); the whole run gets RUN_LIMIT.
RPC_TIMEOUT = 10
RUN_LIMIT = 45


class CheckFailed(Exception):
    pass


STEP = ["start"]


def step(name):
    STEP[0] = name
    print(f"-- {name}", flush=True)


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def eq(got, want, what):
    if got != want:
        raise CheckFailed(f"{what}: got {got!r}, want {want!r}")


def parse_endpoints(s):
    eps = []
    for part in s.split(","):
        part = part.strip()
        for scheme in ("http://", "https://"):
            if part.startswith(scheme):
                part = part[len(scheme):]
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"endpoint {part!r} is not host:port")
        eps.append((host, int(port)))
    if not eps:
        raise ValueError("no endpoints")
    return eps


def client(ep):
    return aetcd.Client(host=ep[0], port=ep[1], timeout=RPC_TIMEOUT)


async def put_get(a, b, ns):
    step("put/get: a single key")
    k = ns + b"k"
    r1 = await a.put(k, b"v1")
    rev1 = r1.header.revision
    check(rev1 > 0, f"put's header revision is positive, got {rev1}")
    g = await a.get(k)
    check(g is not None, "the key just put is found")
    eq(g.value, b"v1", "value")
    eq(g.version, 1, "version after one put")
    eq(g.create_revision, rev1, "create_revision is the put's revision")
    eq(g.mod_revision, rev1, "mod_revision is the put's revision")

    r2 = await a.put(k, b"v2", prev_kv=True)
    rev2 = r2.header.revision
    eq(rev2, rev1 + 1, "the second put's revision follows the first")
    check(r2.prev_kv is not None, "put with prev_kv returns the old pair")
    eq(r2.prev_kv.value, b"v1", "prev_kv value")
    # Read through the other connection (another member): a linearizable
    # read must see the write acknowledged on the first.
    g = await b.get(k)
    check(g is not None, "the key is visible through the second connection")
    eq(g.value, b"v2", "value read through the second connection")
    eq(g.version, 2, "version after two puts")
    eq(g.create_revision, rev1, "create_revision unchanged by an update")
    eq(g.mod_revision, rev2, "mod_revision moves with the update")

    step("put/get: a missing key")
    check(await a.get(ns + b"missing") is None, "a missing key reads as None")

    step("put/get: prefix")
    p = ns + b"p/"
    for i in (3, 1, 2):
        await b.put(p + str(i).encode(), f"pv{i}".encode())
    # Neighbours on both sides of the prefix range must stay out.
    await b.put(ns + b"p", b"below")
    await b.put(ns + b"p0", b"above")
    rng = await a.get_prefix(p)
    eq(rng.count, 3, "count of keys under the prefix")
    eq([kv.key for kv in rng], [p + b"1", p + b"2", p + b"3"], "keys, in key order")
    eq([kv.value for kv in rng], [b"pv1", b"pv2", b"pv3"], "values under the prefix")
    rng = await a.get_prefix(p, sort_order="descend", sort_target="key")
    eq([kv.key for kv in rng], [p + b"3", p + b"2", p + b"1"], "keys, descending")

    step("put/get: delete")
    d = await a.delete(k)
    check(d is not None, "deleting an existing key reports it")
    eq(d.deleted, 1, "deleted count")
    check(await b.get(k) is None, "a deleted key is gone through the other connection")
    check(await a.delete(k) is None, "deleting it again deletes nothing")
    dr = await a.delete_prefix(p)
    eq(dr.deleted, 3, "delete_prefix removes the three keys")
    eq((await a.get_prefix(p)).count, 0, "nothing left under the prefix")
    check(await a.get(ns + b"p") is not None, "the key below the prefix survives")


async def txn(a, b, ns):
    t = a.transactions
    k = ns + b"t"
    other = ns + b"t-other"
    await a.put(k, b"one")

    step("txn: value compare, success branch")
    ok, resp = await a.transaction(
        compare=[t.value(k) == b"one"],
        success=[t.put(k, b"two"), t.get(k)],
        failure=[t.put(other, b"failure-ran")],
    )
    eq(ok, True, "succeeded")
    eq(len(resp), 2, "one response per success op")
    check(resp[0].WhichOneof("response") == "response_put", "first response is a put")
    eq([v for v, _ in resp[1]], [b"two"], "the get inside the txn sees the put before it")
    eq((await b.get(k)).value, b"two", "the success branch took effect")
    check(await b.get(other) is None, "the failure branch did not run")

    step("txn: value compare, failure branch")
    ok, resp = await a.transaction(
        compare=[t.value(k) == b"one"],
        success=[t.put(k, b"three")],
        failure=[t.put(other, b"failure-ran"), t.get(k)],
    )
    eq(ok, False, "succeeded")
    eq(len(resp), 2, "one response per failure op")
    eq([v for v, _ in resp[1]], [b"two"], "the get in the failure branch")
    eq((await b.get(k)).value, b"two", "the success branch did not run")
    eq((await b.get(other)).value, b"failure-ran", "the failure branch took effect")

    step("txn: version compare")
    version = (await a.get(k)).version
    eq(version, 2, "version before the compare")
    ok, _ = await a.transaction(
        compare=[t.version(k) == 2, t.value(k) != b"nope"],
        success=[t.put(k, b"v3")],
        failure=[],
    )
    eq(ok, True, "version == 2 and value != 'nope' holds")
    ok, _ = await a.transaction(
        compare=[t.version(k) > 3],
        success=[t.put(k, b"wrong")],
        failure=[t.delete(other)],
    )
    eq(ok, False, "version 3 is not > 3")
    eq((await b.get(k)).value, b"v3", "value after the version txns")
    check(await b.get(other) is None, "the failure branch's delete ran")
    ok, _ = await a.transaction(
        compare=[t.version(k) < 4, t.create(ns + b"absent") == 0, t.mod(k) > 0],
        success=[],
        failure=[],
    )
    eq(ok, True, "version < 4, create(absent) == 0 and mod > 0 all hold")

    step("txn: nested")
    inner = ns + b"t-nested"
    ok, resp = await a.transaction(
        compare=[t.value(k) == b"v3"],
        success=[
            t.txn(
                compare=[t.version(inner) == 0],
                success=[t.put(inner, b"inner")],
                failure=[],
            )
        ],
        failure=[],
    )
    eq(ok, True, "outer txn succeeded")
    eq(resp[0].response_txn.succeeded, True, "inner txn succeeded")
    eq((await b.get(inner)).value, b"inner", "the inner txn's put")


async def lease(a, b, ns):
    k = ns + b"leased"

    step("lease: grant")
    ls = await a.lease(30)
    check(ls.id != 0, "the granted lease has an id")
    eq(ls.ttl, 30, "granted TTL")

    step("lease: put with the lease")
    await a.put(k, b"mine", lease=ls)
    g = await b.get(k)
    check(g is not None, "the leased key is visible")
    eq(g.lease, ls.id, "the key carries the lease id")

    step("lease: time to live")
    info = await b.get_lease_info(ls.id, keys=True)
    eq(info.ID, ls.id, "time-to-live answers for the lease asked")
    eq(info.grantedTTL, 30, "grantedTTL")
    check(0 < info.TTL <= 30, f"remaining TTL in (0, 30], got {info.TTL}")
    eq(list(info.keys), [k], "keys attached to the lease")
    ka = await a.refresh_lease(ls.id)
    check(ka is not None, "keep-alive answers")
    eq(ka.ID, ls.id, "keep-alive answers for the lease")
    check(0 < ka.TTL <= 30, f"keep-alive TTL in (0, 30], got {ka.TTL}")

    step("lease: revoke")
    await ls.revoke()
    check(await b.get(k) is None, "the leased key is gone after revoke")
    check(await a.get(k) is None, "gone through the first connection too")
    info = await a.get_lease_info(ls.id, keys=False)
    eq(info.TTL, -1, "a revoked lease reports TTL -1")

    step("lease: expiry deletes the key, and watchers see it")
    ttl = 2
    short = await a.lease(ttl)
    granted_at = time.monotonic()
    check(short.ttl >= ttl, f"granted TTL {short.ttl} is at least the {ttl}s asked")
    k2 = ns + b"expiring"
    await a.put(k2, b"brief", lease=short)
    w = await b.watch(k2, kind=aetcd.rtypes.EventKind.DELETE)
    it = w.__aiter__()
    await asyncio.sleep(max(0.0, granted_at + ttl / 2 - time.monotonic()))
    check(await a.get(k2) is not None, "the key is still there half-way through its TTL")
    limit = short.ttl + 5
    try:
        ev = await asyncio.wait_for(it.__anext__(), limit)
    except asyncio.TimeoutError:
        raise CheckFailed(f"no delete event within {limit}s of a {short.ttl}s lease")
    lived = time.monotonic() - granted_at
    eq((ev.kind, ev.kv.key), ("DELETE", k2), "the expiry's event")
    check(lived >= short.ttl - 0.5, f"the key outlived its TTL ({lived:.1f}s >= {short.ttl}s)")
    check(await a.get(k2) is None, "the key is gone after expiry")
    eq((await a.get_lease_info(short.id, keys=False)).TTL, -1, "an expired lease reports TTL -1")
    await w.cancel()


async def next_event(it, what):
    try:
        return await asyncio.wait_for(it.__anext__(), RPC_TIMEOUT)
    except asyncio.TimeoutError:
        raise CheckFailed(f"no watch event within {RPC_TIMEOUT}s: {what}")


async def watch(a, b, ns):
    k = ns + b"w"

    step("watch: a put from another connection arrives")
    w = await a.watch(k)
    check(w.watch_id is not None, "the watch was created")
    it = w.__aiter__()
    r = await b.put(k, b"hello")
    ev = await next_event(it, "put of 'hello'")
    eq(ev.kind, "PUT", "event kind")
    eq(ev.kv.key, k, "event key")
    eq(ev.kv.value, b"hello", "event value")
    eq(ev.kv.mod_revision, r.header.revision, "event revision is the put's")
    eq(ev.kv.version, 1, "event version")

    step("watch: prev_kv")
    # From the next revision on, explicitly: whether a watch with no start
    # revision misses a write already acknowledged through its own member is
    # the own-writes scenario's question, not this one's.
    wp = await b.watch(k, prev_kv=True, start_revision=r.header.revision + 1)
    itp = wp.__aiter__()
    await a.put(k, b"hello2")
    ev = await next_event(itp, "put of 'hello2' with prev_kv")
    eq(ev.kv.value, b"hello2", "event value")
    check(ev.prev_kv is not None, "the event carries the previous pair")
    eq(ev.prev_kv.value, b"hello", "previous value")
    await wp.cancel()
    ev = await next_event(it, "put of 'hello2' on the first watch")
    eq(ev.kv.value, b"hello2", "the first watch sees it too")

    step("watch: an update and a delete arrive in order")
    r2 = await b.put(k, b"again")
    await b.put(ns + b"w-neighbour", b"not watched")
    d = await b.delete(k)
    check(d is not None, "delete reports the key")
    ev = await next_event(it, "put of 'again'")
    eq((ev.kind, ev.kv.value, ev.kv.mod_revision), ("PUT", b"again", r2.header.revision), "second event")
    ev = await next_event(it, "delete")
    eq(ev.kind, "DELETE", "third event kind")
    eq(ev.kv.key, k, "deleted key")
    eq(ev.kv.mod_revision, d.header.revision, "delete event revision")
    await w.cancel()

    step("watch: history from a start revision, prefix")
    w = await b.watch_prefix(ns + b"w", start_revision=r.header.revision)
    it = w.__aiter__()
    got = []
    for i in range(5):
        ev = await next_event(it, f"replayed event {i}")
        got.append((ev.kind, ev.kv.key, ev.kv.value))
    eq(
        got,
        [
            ("PUT", k, b"hello"),
            ("PUT", k, b"hello2"),
            ("PUT", k, b"again"),
            ("PUT", ns + b"w-neighbour", b"not watched"),
            ("DELETE", k, b""),
        ],
        "replayed history under the prefix",
    )
    await w.cancel()


async def lock(a, b, ns):
    name = ns + b"lock"

    step("lock: a held lock excludes the other contender")
    la = a.lock(name, ttl=20)
    lb = b.lock(name, ttl=20)
    eq(await la.acquire(timeout=5), True, "first contender acquires")
    eq(await la.is_acquired(), True, "first contender holds it")
    t0 = time.monotonic()
    eq(await lb.acquire(timeout=1), False, "second contender times out while it is held")
    check(time.monotonic() - t0 >= 0.9, "the second contender waited for its timeout")
    eq(await lb.is_acquired(), False, "second contender does not hold it")

    step("lock: release hands it to a waiting contender")
    waiter = asyncio.ensure_future(lb.acquire(timeout=10))
    await asyncio.sleep(0.3)
    check(not waiter.done(), "the waiter is still blocked before the release")
    eq(await la.release(), True, "release")
    eq(await asyncio.wait_for(waiter, 15), True, "the waiter acquires after the release")
    eq(await lb.is_acquired(), True, "second contender now holds it")
    eq(await la.is_acquired(), False, "first contender no longer holds it")
    eq(await lb.release(), True, "second release")

    step("lock: mutual exclusion under contention")
    counter = ns + b"lock-counter"
    await a.put(counter, b"0")
    inside = {"n": 0, "max": 0}
    rounds = 5

    async def contender(c, tag):
        for i in range(rounds):
            lk = c.lock(name, ttl=20)
            check(await lk.acquire(timeout=20), f"{tag} acquires in round {i}")
            inside["n"] += 1
            inside["max"] = max(inside["max"], inside["n"])
            try:
                # Read-modify-write with a pause: without exclusion the two
                # contenders would overwrite each other's increments.
                v = int((await c.get(counter)).value)
                await asyncio.sleep(0.02)
                await c.put(counter, str(v + 1).encode())
            finally:
                inside["n"] -= 1
                check(await lk.release(), f"{tag} releases in round {i}")

    await asyncio.gather(contender(a, "A"), contender(b, "B"))
    eq(inside["max"], 1, "at most one contender inside the lock at a time")
    eq(int((await a.get(counter)).value), 2 * rounds, "no increment was lost")


async def own_writes(endpoints, rounds=100):
    """What etcd gives a client that talks to one member: a write that member
    acknowledged is already applied there, so a serializable read on it sees
    the write and a watch created on it afterwards (no start revision) starts
    after the write. Checked on every member, followers included."""
    eps = parse_endpoints(endpoints)
    ns = f"/pyclient-own/{os.getpid()}-{time.time_ns()}/".encode()
    problems = []
    async with client(eps[0]) as other:
        for ep in eps:
            async with client(ep) as c:
                step(f"own writes: serializable read after a put on {ep[0]}:{ep[1]}")
                stale = 0
                for i in range(rounds):
                    v = str(i).encode()
                    await c.put(ns + b"s", v)
                    g = await c.get(ns + b"s", serializable=True)
                    if g is None or g.value != v:
                        stale += 1
                if stale:
                    problems.append(
                        f"{ep[0]}:{ep[1]}: {stale} of {rounds} serializable reads right "
                        "after a put acknowledged by the same member missed that put"
                    )
                step(f"own writes: watch created after a put on {ep[0]}:{ep[1]}")
                early = 0
                for i in range(rounds // 4):
                    k = ns + b"w%d" % i
                    await c.put(k, b"before")
                    w = await c.watch(k)
                    it = w.__aiter__()
                    await other.put(k, b"after")
                    ev = await next_event(it, f"put of 'after' on watch {i}")
                    if ev.kv.value != b"after":
                        early += 1
                    await w.cancel()
                if early:
                    problems.append(
                        f"{ep[0]}:{ep[1]}: {early} of {rounds // 4} watches created (no start "
                        "revision) right after a put acknowledged by the same member "
                        "delivered that earlier put as a new event"
                    )
    await other_cleanup(eps[0], ns)
    check(not problems, "; ".join(problems))


async def other_cleanup(ep, ns):
    async with client(ep) as c:
        await c.delete_prefix(ns)


async def scenario(endpoints):
    eps = parse_endpoints(endpoints)
    a_ep = eps[0]
    b_ep = eps[1 % len(eps)]
    ns = f"/pyclient/{os.getpid()}-{time.time_ns()}/".encode()
    async with client(a_ep) as a, client(b_ep) as b:
        step("connect")
        s = await a.status()
        check(s.leader != 0, "status names a leader")
        await put_get(a, b, ns)
        await txn(a, b, ns)
        await lease(a, b, ns)
        await watch(a, b, ns)
        await lock(a, b, ns)
        step("cleanup")
        await a.delete_prefix(ns)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", required=True, help="host:port[,host:port...]")
    ap.add_argument(
        "--scenario",
        choices=["main", "own-writes"],
        default="main",
        help="main: put/get, txn, lease, watch, lock; own-writes: read-your-writes per member",
    )
    args = ap.parse_args()
    try:
        parse_endpoints(args.endpoints)
    except ValueError as e:
        print(f"bad --endpoints: {e}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        run = scenario if args.scenario == "main" else own_writes
        asyncio.run(asyncio.wait_for(run(args.endpoints), RUN_LIMIT))
    except CheckFailed as e:
        print(f"FAIL in step '{STEP[0]}': {e}", file=sys.stderr)
        return 1
    except asyncio.TimeoutError:
        print(f"FAIL in step '{STEP[0]}': the run exceeded {RUN_LIMIT}s", file=sys.stderr)
        return 1
    except Exception as e:  # a client error is a failure of the step too
        traceback.print_exc()
        print(f"FAIL in step '{STEP[0]}': {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"PASS ({time.monotonic() - t0:.1f}s, aetcd {aetcd_version()})", flush=True)
    return 0


def aetcd_version():
    try:
        from importlib.metadata import version

        return version("aetcd")
    except Exception:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
