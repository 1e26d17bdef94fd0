"""The client matrix's scenario (test/compat/client-matrix.test.ts) with
python-etcd3 (Debian's python3-etcd3, on grpcio), run by /usr/bin/python3.

Usage: python-etcd3.py HOST PORT PREFIX. Prints one JSON line: a list of
[step, outcome] pairs, normalized so that two servers given the same requests
print the same list (revisions relative to the first one seen, no lease IDs).
python-etcd3 has no election; its lock is its own (a txn on a lease).
"""
import json
import queue
import sys
import time

import etcd3
import grpc

host, port, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
client = etcd3.client(host=host, port=port, timeout=10)
steps = []
base_revision = client.get_response(prefix).header.revision


def relative(revision):
    return revision - base_revision


def error_outcome(error):
    """An error as a python-etcd3 program sees it: its class, and grpc's code and details where there are."""
    described = {"type": type(error).__name__}
    if isinstance(error, grpc.RpcError):
        described["code"] = error.code().name
        described["details"] = error.details()
    if isinstance(error, etcd3.exceptions.RevisionCompactedError):
        described["compactedRevision"] = relative(error.compacted_revision)
    return {"error": described}


def record(name, action):
    """Runs action and records what it returns, or the error it raises."""
    try:
        steps.append([name, action()])
    except Exception as error:  # every error is an outcome to compare
        steps.append([name, error_outcome(error)])


def key_values(pairs):
    return [[meta.key.decode()[len(prefix):], value.decode()] for value, meta in pairs]


def kv():
    for name in ["a", "b", "c"]:
        record("kv.put." + name, lambda: {"revision": relative(client.put(prefix + name, "value-" + name).header.revision)})
    record("kv.put.prevKv", lambda: client.put(prefix + "a", "value-a2", prev_kv=True).prev_kv.value.decode())

    def get():
        value, meta = client.get(prefix + "a")
        return {"value": value.decode(), "version": meta.version, "createRevision": relative(meta.create_revision), "modRevision": relative(meta.mod_revision)}

    record("kv.get", get)
    record("kv.get.missing", lambda: list(client.get(prefix + "missing")))
    record("kv.range.prefix", lambda: key_values(client.get_prefix(prefix)))

    # python-etcd3 0.12 builds no limit, count_only or revision into a RangeRequest (it takes them and drops
    # them), so its ranges are whole: sorted, here.
    record("kv.range.descending", lambda: key_values(client.get_prefix(prefix, sort_order="descend")))
    record("kv.delete", lambda: client.delete(prefix + "b"))
    record("kv.delete.missing", lambda: client.delete(prefix + "b"))
    record("kv.range.afterDelete", lambda: key_values(client.get_prefix(prefix)))
    record("error.putWithMissingLease", lambda: client.put(prefix + "leased", "x", lease=0x5EED5EED) and "no error")
    record("error.putEmptyKey", lambda: client.put("", "x") and "no error")


def txn():
    key = prefix + "txn"
    client.put(key, "old")
    transactions = client.transactions
    for name in ["txn.cas.success", "txn.cas.failure"]:
        def cas():
            succeeded, responses = client.transaction(
                compare=[transactions.value(key) == "old"],
                success=[transactions.put(key, "new")],
                failure=[transactions.get(key)],
            )
            outcome = {"succeeded": succeeded, "responses": len(responses)}
            if not succeeded:
                outcome["else"] = key_values(responses[0])
            return outcome

        record(name, cas)

    def nested():
        succeeded, responses = client.transaction(
            compare=[transactions.version(key) > 1, transactions.create(prefix + "nobody") == 0],
            success=[transactions.txn(compare=[transactions.value(key) == "new"], success=[transactions.put(key, "nested")], failure=[])],
            failure=[],
        )
        return {"succeeded": succeeded, "nestedSucceeded": responses[0].response_txn.succeeded}

    record("txn.nested", nested)
    record("txn.after", lambda: key_values(client.get_prefix(key)))


def collect_events(responses, want):
    """Events from a queue of watch responses until `want` arrived or a few seconds passed."""
    events = []
    deadline = time.monotonic() + 5
    while len(events) < want and time.monotonic() < deadline:
        try:
            response = responses.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if isinstance(response, Exception):
            events.append(error_outcome(response))
            break
        for event in response.events:
            kind = "PUT" if isinstance(event, etcd3.events.PutEvent) else "DELETE"
            events.append([kind, event.key.decode()[len(prefix):], event.value.decode()])
    return events


def watch():
    watch_prefix = prefix + "w/"
    responses = queue.Queue()
    watch_id = client.add_watch_prefix_callback(watch_prefix, responses.put)
    steps.append(["watch.created", watch_id is not None])
    first = client.put(watch_prefix + "x", "1")
    client.put(watch_prefix + "x", "2")
    client.delete(watch_prefix + "x")
    steps.append(["watch.events", collect_events(responses, 3)])
    client.cancel_watch(watch_id)
    resumed = queue.Queue()
    resumed_id = client.add_watch_prefix_callback(watch_prefix, resumed.put, start_revision=first.header.revision + 1)
    steps.append(["watch.resume", collect_events(resumed, 2)])
    client.cancel_watch(resumed_id)


def lease():
    granted = client.lease(5)
    steps.append(["lease.grant", granted.ttl])
    record("lease.keepAliveOnce", lambda: [response.TTL for response in granted.refresh()])
    key = prefix + "leased"
    record("lease.put", lambda: client.put(key, "held", lease=granted) and "ok")

    def time_to_live():
        info = client.get_lease_info(granted.id)
        return {"grantedTTL": info.grantedTTL, "remainingInRange": 0 < info.TTL <= 5, "keys": [attached.decode()[len(prefix):] for attached in info.keys]}

    record("lease.timeToLive", time_to_live)
    record("lease.revoke", lambda: granted.revoke() or "ok")
    record("lease.keyAfterRevoke", lambda: list(client.get(key)))
    record("lease.timeToLiveAfterRevoke", lambda: client.get_lease_info(granted.id).TTL)
    record("lease.revokeAgain", lambda: granted.revoke() or "no error")
    record("lease.keepAliveAfterRevoke", lambda: [response.TTL for response in granted.refresh()])


def lease_expiry():
    """A lease asked for 1 s (below etcd's minimum TTL) that nobody keeps alive: it expires with its key."""
    expiring = client.lease(1)
    steps.append(["lease.expiry.grant", expiring.ttl])
    key = prefix + "expiring"
    client.put(key, "soon gone", lease=expiring)
    gone = False
    deadline = time.monotonic() + 10
    while not gone and time.monotonic() < deadline:
        gone = client.get(key)[0] is None
        if not gone:
            time.sleep(0.2)
    steps.append(["lease.expiry.keyGone", gone])
    record("lease.expiry.keepAlive", lambda: [response.TTL for response in expiring.refresh()])


def lock():
    name = prefix[1:] + "lock"
    holder = client.lock(name, ttl=10)
    record("lock.acquire", holder.acquire)
    waiter = client.lock(name, ttl=10)
    # timeout=0: one attempt. With a wait, Debian's python-etcd3 0.12 calls tenacity's wait with an older
    # signature than its tenacity has, and raises TypeError.
    record("lock.contended", lambda: waiter.acquire(timeout=0))
    record("lock.isAcquired", lambda: [holder.is_acquired(), waiter.is_acquired()])
    record("lock.release", holder.release)
    record("lock.reacquire", lambda: waiter.acquire(timeout=5))
    record("lock.releaseAgain", waiter.release)
    record("lock.releaseNotHeld", holder.release)


def maintenance():
    def status():
        response = client.status()
        return {
            "version": response.version.startswith("3.4.") and response.version[4:].isdigit(),
            "dbSize": response.db_size > 0,
            "leader": None if response.leader is None else response.leader.name,
            "raftIndex": response.raft_index > 0,
            "raftTerm": response.raft_term > 0,
        }

    record("maintenance.status", status)

    def members():
        listed = list(client.members)
        return {"count": len(listed), "name": listed[0].name}

    record("maintenance.memberList", members)


def compaction():
    key = prefix + "a"
    revision = client.put(key, "before compaction").header.revision
    record("compaction.compact", lambda: client.compact(revision, physical=True) or "ok")
    record("compaction.compactAgain", lambda: client.compact(revision) or "no error")
    record("compaction.compactFuture", lambda: client.compact(revision + 1000) or "no error")

    def watch_compacted():
        responses = queue.Queue()
        watch_id = client.add_watch_callback(key, responses.put, start_revision=revision - 1)
        try:
            response = responses.get(timeout=5)
        finally:
            client.cancel_watch(watch_id)
        return error_outcome(response) if isinstance(response, Exception) else "no error"

    record("compaction.watchCompacted", watch_compacted)


for part in [kv, txn, watch, lease, lease_expiry, lock, maintenance, compaction]:
    part()
print(json.dumps(steps), flush=True)
client.close()
