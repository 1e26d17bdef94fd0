// Locks and elections: `etcdctl lock` and `etcdctl elect` (clientv3's recipes
// over KV, Lease and Watch) print the same on etcd 3.4 and edgetcd; the Lock
// and Election services share their keys with those recipes, so they exclude
// each other; N clients incrementing a counter under the Lock service, with
// the lock key's create revision as a fencing token in a txn compare, lose no
// update; a waiter whose lease expired is not handed the lock.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KV, Lease } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { Election } from "../../src/gen/v3electionpb/v3election_pb.ts";
import { Lock } from "../../src/gen/v3lockpb/v3lock_pb.ts";
import { etcdctlAsync, etcdctlProcess, startEdgetcd, startEtcd, type RunningServer } from "../support/processes.ts";

const timing = ["--heartbeat-interval", "100", "--election-timeout", "1000"];
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined) => new TextDecoder().decode(value);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// Lease ids print as unpadded hex: a random one may have fewer than 16 digits.
const maskIds = (output: string) => output.replace(/\b[0-9a-f]{8,16}\b/g, "<id>");

describe("etcdctl lock and elect on etcd 3.4 and edgetcd", () => {
  let etcd: RunningServer;
  let edgetcd: RunningServer;
  before(async () => {
    [etcd, edgetcd] = await Promise.all([startEtcd({ extraArgs: timing }), startEdgetcd({ extraArgs: timing })]);
  }, { timeout: 120_000 });
  after(async () => {
    await Promise.all([etcd?.stop(), edgetcd?.stop()]);
  });

  test("lock with a command prints the same key and revision", { timeout: 60_000 }, async () => {
    const run = (server: RunningServer) =>
      etcdctlAsync(server.endpoint, ["lock", "mylock", "--", "sh", "-c", 'echo "$ETCD_LOCK_KEY $ETCD_LOCK_REV"']);
    const [expected, actual] = await Promise.all([run(etcd), run(edgetcd)]);
    assert.equal(expected.status, 0, expected.stderr);
    assert.equal(maskIds(actual.stdout), maskIds(expected.stdout));
    assert.equal(actual.status, 0);
  });

  test("a second etcdctl lock waits for the first one's release", { timeout: 60_000 }, async () => {
    for (const server of [etcd, edgetcd]) {
      const first = etcdctlProcess(server.endpoint, ["lock", "queue", "--", "sh", "-c", "echo first; sleep 1; echo first-done"]);
      await until(() => first.output().includes("first"), "the first lock");
      const second = etcdctlProcess(server.endpoint, ["lock", "queue", "echo", "second"]);
      await Promise.all([first.exited, second.exited]);
      assert.equal(first.output(), "first\nfirst-done\n");
      assert.equal(second.output(), "second\n", `${server.kind}: the second lock ran after the first finished`);
    }
  });

  test("elect campaigns and elect -l observes, as on etcd", { timeout: 60_000 }, async () => {
    const outputs: string[][] = [];
    for (const server of [etcd, edgetcd]) {
      const observer = etcdctlProcess(server.endpoint, ["elect", "-l", "chair"]);
      const leader = etcdctlProcess(server.endpoint, ["elect", "chair", "alice"]);
      await until(() => leader.output().includes("alice"), "alice elected");
      const follower = etcdctlProcess(server.endpoint, ["elect", "chair", "bob"]);
      await sleep(500);
      assert.equal(follower.output(), "", "bob waits while alice leads");
      await until(() => observer.output().includes("alice"), "the observer sees alice");
      leader.child.kill("SIGINT");
      await leader.exited;
      await until(() => follower.output().includes("bob"), "bob elected after alice resigned");
      await until(() => observer.output().includes("bob"), "the observer sees bob");
      follower.child.kill("SIGINT");
      observer.child.kill("SIGINT");
      await Promise.all([follower.exited, observer.exited]);
      outputs.push([leader.output(), follower.output(), observer.output()].map(maskIds));
    }
    assert.deepEqual(outputs[1], outputs[0]);
  });
});

describe("Lock and Election services on edgetcd", () => {
  let server: RunningServer;
  let kv: Client<typeof KV>;
  let lease: Client<typeof Lease>;
  let lock: Client<typeof Lock>;
  let election: Client<typeof Election>;
  before(async () => {
    server = await startEdgetcd({ extraArgs: timing });
    const transport = createGrpcTransport({ baseUrl: `http://${server.endpoint}` });
    kv = createClient(KV, transport);
    lease = createClient(Lease, transport);
    lock = createClient(Lock, transport);
    election = createClient(Election, transport);
  }, { timeout: 120_000 });
  after(async () => {
    await server?.stop();
  });

  test("N clients increment a counter under the lock, fenced by the lock key's create revision: no lost update", { timeout: 60_000 }, async () => {
    const clients = 5;
    const rounds = 6;
    await kv.put({ key: bytes("counter"), value: bytes("0") });
    const worker = async () => {
      const { ID } = await lease.leaseGrant({ TTL: 30n });
      for (let i = 0; i < rounds; i++) {
        const held = await lock.lock({ name: bytes("counter-lock"), lease: ID });
        const token = (await kv.range({ key: held.key })).kvs[0]!.createRevision;
        const current = Number(text((await kv.range({ key: bytes("counter") })).kvs[0]!.value));
        await sleep(5); // widen the window a broken lock would lose an update in
        const written = await kv.txn({
          compare: [{ key: held.key, target: 1, result: 0, targetUnion: { case: "createRevision", value: token } }],
          success: [{ request: { case: "requestPut", value: { key: bytes("counter"), value: bytes(String(current + 1)) } } }],
        });
        assert.ok(written.succeeded, "the holder's fencing token still stands");
        await lock.unlock({ key: held.key });
      }
      await lease.leaseRevoke({ ID });
    };
    await Promise.all(Array.from({ length: clients }, worker));
    assert.equal(text((await kv.range({ key: bytes("counter") })).kvs[0]!.value), String(clients * rounds));
  });

  test("the Lock service and etcdctl lock exclude each other (same keys)", { timeout: 30_000 }, async () => {
    const { ID } = await lease.leaseGrant({ TTL: 30n });
    const held = await lock.lock({ name: bytes("shared"), lease: ID });
    assert.equal(text(held.key), `shared/${ID.toString(16)}`);
    const waiter = etcdctlProcess(server.endpoint, ["lock", "shared", "echo", "got-it"]);
    await sleep(700);
    assert.equal(waiter.output(), "", "etcdctl waits while the service holds the lock");
    await lock.unlock({ key: held.key });
    assert.equal(await waiter.exited, 0);
    assert.equal(waiter.output(), "got-it\n");

    const holder = etcdctlProcess(server.endpoint, ["lock", "shared", "--", "sh", "-c", "echo holding; sleep 1"]);
    await until(() => holder.output().includes("holding"), "etcdctl holds the lock");
    const startedAt = Date.now();
    const next = await lock.lock({ name: bytes("shared"), lease: ID });
    assert.ok(Date.now() - startedAt >= 500, "the service waited for etcdctl's release");
    assert.equal(await holder.exited, 0);
    await lock.unlock({ key: next.key });
    await lease.leaseRevoke({ ID });
  });

  test("lock errors: an unknown lease; a waiter whose lease expired is not handed the lock", { timeout: 30_000 }, async () => {
    await assert.rejects(lock.lock({ name: bytes("e"), lease: 0x1234n }), /requested lease not found/);
    const owner = await lease.leaseGrant({ TTL: 30n });
    const held = await lock.lock({ name: bytes("e"), lease: owner.ID });
    const short = await lease.leaseGrant({ TTL: 2n });
    const waiting = lock.lock({ name: bytes("e"), lease: short.ID });
    const outcome = waiting.then(() => "locked", (error: Error) => error.message);
    await sleep(3500); // the short lease expires (no keep-alive) and its key goes
    await lock.unlock({ key: held.key });
    assert.match(await outcome, /mutex: session is expired/);
    await lease.leaseRevoke({ ID: owner.ID });
  });

  test("Campaign, Leader, Proclaim, Observe, Resign; etcdctl elect -l sees the service's leader", { timeout: 30_000 }, async () => {
    const name = bytes("board");
    await assert.rejects(election.leader({ name }), /election: no leader/);
    const first = await lease.leaseGrant({ TTL: 30n });
    const second = await lease.leaseGrant({ TTL: 30n });
    const abort = new AbortController();
    const observed: string[] = [];
    const observing = (async () => {
      try {
        for await (const response of election.observe({ name }, { signal: abort.signal })) observed.push(text(response.kv?.value));
      } catch {
        // aborted at the end
      }
    })();
    const won = await election.campaign({ name, lease: first.ID, value: bytes("one") });
    const leaderKey = won.leader!;
    assert.equal(text(leaderKey.key), `board/${first.ID.toString(16)}`);
    assert.equal(leaderKey.rev, won.header!.revision);
    assert.equal(text((await election.leader({ name })).kv?.value), "one");
    const observer = etcdctlProcess(server.endpoint, ["elect", "-l", "board"]);
    await until(() => observer.output().includes("one"), "etcdctl elect -l sees one");

    let secondWon = false;
    const pending = election.campaign({ name, lease: second.ID, value: bytes("two") }).then((response) => {
      secondWon = true;
      return response;
    });
    await election.proclaim({ leader: leaderKey, value: bytes("one-again") });
    await until(() => observed.includes("one-again") && observer.output().includes("one-again"), "the proclamation observed");
    assert.equal(secondWon, false);
    await election.resign({ leader: leaderKey });
    const next = await pending;
    assert.equal(text(next.leader?.key), `board/${second.ID.toString(16)}`);
    await until(() => observed.includes("two") && observer.output().includes("two"), "the new leader observed");
    // The old leader can no longer speak.
    await assert.rejects(election.proclaim({ leader: leaderKey, value: bytes("stale") }), /election: not leader/);
    await assert.rejects(election.proclaim({ value: bytes("x") }), /"leader" field must be provided/);
    assert.deepEqual(observed, ["one", "one-again", "two"]);
    abort.abort();
    observer.child.kill("SIGINT");
    await Promise.all([observing, observer.exited]);
    assert.equal(maskIds(observer.output()), "board/<id>\none\nboard/<id>\none-again\nboard/<id>\ntwo\n");
  });
});
