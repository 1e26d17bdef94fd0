"""The client matrix's scenario (test/compat/client-matrix.test.ts) with etcd3gw
(Debian's python3-etcd3gw), which speaks etcd's JSON gateway (/v3/...), run
by /usr/bin/python3.

Usage: python-etcd3gw.py HOST PORT PREFIX. Prints one JSON line: a list of
[step, outcome] pairs, normalized so that two servers given the same requests
print the same list (revisions relative to the first one seen, no lease IDs).
etcd3gw has no election, no compaction and no read at a revision: those go
through the client's own post() (its HTTP session and error mapping), and the
compacted watch reads the gateway's stream line by line through its session.
"""
import json
import queue
import sys
import time

import etcd3gw
from etcd3gw import watch as etcd3gw_watch
from etcd3gw.lease import Lease
from etcd3gw.utils import _decode, _encode, _increment_last_byte

host, port, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# etcd 3.4 serves the gateway at /v3/ and /v3beta/ (no longer /v3alpha/, etcd3gw's default).
client = etcd3gw.Etcd3Client(host=host, port=port, timeout=10, api_path="/v3/")
steps = []
base_revision = int(client.post(client.get_url("/kv/range"), json={"key": _encode(prefix)})["header"]["revision"])


def relative(revision):
    return int(revision) - base_revision


def error_outcome(error):
    """An error as an etcd3gw program sees it: its class, the HTTP reason and the gateway's JSON body."""
    described = {"type": type(error).__name__}
    if isinstance(error, etcd3gw.exceptions.Etcd3Exception):
        described["reason"] = error.args[0] if error.args else None
        try:
            described["body"] = json.loads(error.detail_text)
        except (TypeError, ValueError):
            described["body"] = error.detail_text
    return {"error": described}


def record(name, action):
    """Runs action and records what it returns, or the error it raises."""
    try:
        steps.append([name, action()])
    except Exception as error:  # every error is an outcome to compare
        steps.append([name, error_outcome(error)])


def text(encoded):
    return _decode(encoded).decode()


def relative_key(key):
    return (key.decode() if isinstance(key, bytes) else key)[len(prefix):]


def key_values(pairs):
    return [[relative_key(meta["key"]), value.decode()] for value, meta in pairs]


def post(path, body):
    return client.post(client.get_url(path), json=body)


def kv():
    for name in ["a", "b", "c"]:
        record("kv.put." + name, lambda: client.put(prefix + name, "value-" + name))
    record("kv.put.overwrite", lambda: client.put(prefix + "a", "value-a2"))

    def get():
        [(value, meta)] = client.get(prefix + "a", metadata=True)
        return {"value": value.decode(), "version": meta["version"], "createRevision": relative(meta["create_revision"]), "modRevision": relative(meta["mod_revision"])}

    record("kv.get", get)
    record("kv.get.missing", lambda: client.get(prefix + "missing"))
    record("kv.range.prefix", lambda: key_values(client.get_prefix(prefix)))
    record(
        "kv.range.limitDescending",
        lambda: key_values(client.get(prefix, metadata=True, sort_order="descend", range_end=_encode(_increment_last_byte(prefix)), limit=2)),
    )

    def count_only():
        response = post("/kv/range", {"key": _encode(prefix), "range_end": _encode(_increment_last_byte(prefix)), "count_only": True})
        return {"count": response.get("count"), "kvs": "kvs" in response, "more": "more" in response}

    record("kv.range.countOnly", count_only)
    record("kv.delete", lambda: client.delete(prefix + "b"))
    # The gateway leaves out fields holding their zero value (deleted: 0), so etcd3gw says False.
    record("kv.delete.missing", lambda: client.delete(prefix + "b"))
    record("kv.range.afterDelete", lambda: key_values(client.get_prefix(prefix)))
    record("error.putWithMissingLease", lambda: client.put(prefix + "leased", "x", lease=Lease(0x5EED5EED, client=client)) and "no error")
    record("error.putEmptyKey", lambda: client.put("", "x") and "no error")
    record("error.badBase64", lambda: post("/kv/put", {"key": "not base64!"}) and "no error")


def txn():
    key = prefix + "txn"
    client.put(key, "old")
    record("txn.cas.success", lambda: client.replace(key, "old", "new"))
    record("txn.cas.failure", lambda: client.replace(key, "old", "new"))

    def with_else():
        response = client.transaction({
            "compare": [{"key": _encode(key), "result": "EQUAL", "target": "VALUE", "value": _encode("old")}],
            "success": [{"request_put": {"key": _encode(key), "value": _encode("never")}}],
            "failure": [{"request_range": {"key": _encode(key)}}],
        })
        ranged = response["responses"][0]["response_range"]
        return {
            "succeeded": response.get("succeeded", False),
            "fields": sorted(response.keys()),
            "else": [[relative_key(text(kv["key"])), text(kv["value"])] for kv in ranged["kvs"]],
            "count": ranged["count"],
        }

    record("txn.else", with_else)
    record("txn.create.existing", lambda: client.create(key, "again"))
    record("txn.create.new", lambda: client.create(prefix + "created", "first"))
    record("txn.after", lambda: key_values(client.get_prefix(key)))


class EventQueue:
    """Events a watch hands its callback, read with a deadline."""

    def __init__(self):
        self.events = queue.Queue()

    def take(self, want):
        taken = []
        deadline = time.monotonic() + 5
        while len(taken) < want and time.monotonic() < deadline:
            try:
                taken.append(self.events.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                break
        return taken


def event_outcome(event):
    kv = event["kv"]
    value = kv.get("value", b"")
    return [event.get("type", "PUT"), relative_key(kv["key"]), value.decode() if isinstance(value, bytes) else value]


def watch():
    watch_prefix = prefix + "w/"
    live = EventQueue()
    watcher = etcd3gw_watch.Watcher(client, watch_prefix, live.events.put, range_end=_increment_last_byte(watch_prefix))
    client.put(watch_prefix + "x", "1")
    client.put(watch_prefix + "x", "2")
    client.delete(watch_prefix + "x")
    events = live.take(3)
    watcher.stop()
    steps.append(["watch.events", [event_outcome(event) for event in events]])
    if not events:
        return
    resumed = EventQueue()
    second_revision = int(events[0]["kv"]["mod_revision"]) + 1
    watcher = etcd3gw_watch.Watcher(client, watch_prefix, resumed.events.put, range_end=_increment_last_byte(watch_prefix), start_revision=second_revision)
    steps.append(["watch.resume", [event_outcome(event) for event in resumed.take(2)]])
    watcher.stop()


def lease():
    granted = client.lease(5)
    record("lease.ttl", lambda: 0 < granted.ttl() <= 5)
    record("lease.keepAliveOnce", granted.refresh)
    key = prefix + "leased"
    record("lease.put", lambda: client.put(key, "held", lease=granted))
    record("lease.keys", lambda: [relative_key(attached) for attached in granted.keys()])
    record("lease.revoke", granted.revoke)
    record("lease.keyAfterRevoke", lambda: client.get(key))
    record("lease.ttlAfterRevoke", granted.ttl)
    record("lease.revokeAgain", lambda: granted.revoke() and "no error")
    record("lease.keepAliveAfterRevoke", granted.refresh)


def lease_expiry():
    """A lease asked for 1 s (below etcd's minimum TTL) that nobody keeps alive: it expires with its key."""
    # etcd3gw's lease() drops the TTL the server granted: the grant is posted here.
    granted = post("/lease/grant", {"TTL": 1})
    steps.append(["lease.expiry.grant", int(granted["TTL"])])
    expiring = Lease(int(granted["ID"]), client=client)
    key = prefix + "expiring"
    client.put(key, "soon gone", lease=expiring)
    gone = False
    deadline = time.monotonic() + 10
    while not gone and time.monotonic() < deadline:
        gone = client.get(key) == []
        if not gone:
            time.sleep(0.2)
    steps.append(["lease.expiry.keyGone", gone])
    record("lease.expiry.keepAlive", expiring.refresh)


def lock():
    name = prefix[1:] + "lock"
    holder = client.lock(name, ttl=10)
    record("lock.acquire", holder.acquire)
    waiter = client.lock(name, ttl=10)
    record("lock.contended", waiter.acquire)
    record("lock.isAcquired", lambda: [holder.is_acquired(), waiter.is_acquired()])
    record("lock.release", holder.release)
    record("lock.reacquire", waiter.acquire)
    record("lock.releaseAgain", waiter.release)
    record("lock.releaseNotHeld", holder.release)


def maintenance():
    def status():
        response = client.status()
        return {
            "fields": sorted(response.keys()),
            "headerFields": sorted(response["header"].keys()),
            "version": response["version"].startswith("3.4.") and response["version"][4:].isdigit(),
            "leaderIsSelf": response["leader"] == response["header"]["member_id"],
        }

    record("maintenance.status", status)

    def members():
        listed = client.members()
        return {"count": len(listed), "name": listed[0]["name"], "fields": sorted(listed[0].keys())}

    record("maintenance.memberList", members)


def compaction():
    key = prefix + "a"
    client.put(key, "before compaction")
    [(_, meta)] = client.get(key, metadata=True)
    revision = int(meta["mod_revision"])
    record("compaction.compact", lambda: sorted(post("/kv/compaction", {"revision": revision, "physical": True}).keys()))
    record("compaction.getCompacted", lambda: client.get(key, revision=revision - 1) and "no error")
    record("compaction.getAtCompactRevision", lambda: client.get(key, revision=revision))
    record("compaction.compactAgain", lambda: post("/kv/compaction", {"revision": revision}) and "no error")
    record("compaction.compactFuture", lambda: post("/kv/compaction", {"revision": revision + 1000}) and "no error")
    record("compaction.getFuture", lambda: client.get(key, revision=revision + 1000) and "no error")

    def watch_compacted():
        # etcd3gw's watcher drops a response that has no events: the lines are read here.
        response = client.session.post(client.get_url("/watch"), json={"create_request": {"key": _encode(key), "start_revision": revision - 1}}, stream=True, timeout=10)
        lines = []
        for line in response.iter_lines():
            if line:
                result = json.loads(line)["result"]
                compact_revision = result.pop("compact_revision", None)
                lines.append({
                    "fields": sorted(result.keys()),
                    "created": result.get("created", False),
                    "canceled": result.get("canceled", False),
                    "compactRevision": None if compact_revision is None else relative(compact_revision),
                })
            if len(lines) == 2:
                break
        response.close()
        return lines

    record("compaction.watchCompacted", watch_compacted)


for part in [kv, txn, watch, lease, lease_expiry, lock, maintenance, compaction]:
    part()
# etcd3gw hands values back as bytes: they are printed as text.
print(json.dumps(steps, default=bytes.decode), flush=True)
