// The client matrix's scenario (test/compat/client-matrix.test.ts) with the
// `etcd3` npm package (grpc-js), in this process. Gives a list of [step,
// outcome] pairs, normalized so that two servers given the same requests give
// the same list (revisions relative to the first one seen, lease IDs left out).
// The package's lock and election are its own (txns on a lease), as in Go's
// concurrency package.
import { once } from "node:events";
import { Etcd3, type IKeyValue, type Namespace } from "etcd3";

export type Step = [name: string, outcome: unknown];

/** A lease ID nobody granted (the same one the other clients' scenarios use). */
const missingLeaseId = String(0x5eed5eed);

class Transcript {
  readonly steps: Step[] = [];
  /** Lease IDs, which differ between servers: an error message naming one names "<lease>" instead. */
  readonly leaseIds = new Set<string>();

  add(name: string, outcome: unknown): void {
    this.steps.push([name, outcome]);
  }

  /** Runs action and records what it gives, or the error it throws. */
  async record(name: string, action: () => Promise<unknown>): Promise<void> {
    try {
      this.add(name, await action());
    } catch (error) {
      this.add(name, this.errorOutcome(error));
    }
  }

  /** An error as an etcd3 program sees it: its class (the package maps etcd's messages to classes) and text. */
  errorOutcome(error: unknown): { error: { class: string; message: string } } {
    const { constructor, message } = error as Error;
    let text = String(message);
    for (const leaseId of this.leaseIds) text = text.replaceAll(leaseId, "<lease>");
    return { error: { class: constructor.name, message: text } };
  }
}

/** What firstArgument gives when the event did not come. */
const notEmitted = Symbol("not emitted");

/** The first argument of an emitter's next `event`, or notEmitted after a few seconds. */
async function firstArgument(emitter: NodeJS.EventEmitter, event: string, timeoutMs = 5_000): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<typeof notEmitted>((resolve) => (timer = setTimeout(() => resolve(notEmitted), timeoutMs)));
  try {
    return await Promise.race([once(emitter, event).then((args) => args[0]), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

export async function etcd3Scenario(endpoint: string, prefix: string): Promise<Step[]> {
  const client = new Etcd3({ hosts: `http://${endpoint}` });
  try {
    const namespace = client.namespace(prefix);
    const baseRevision = Number((await client.get(prefix).exec()).header.revision);
    const scenario = { client, namespace, transcript: new Transcript(), relative: (revision: string | number) => Number(revision) - baseRevision };
    await kv(scenario);
    await txn(scenario);
    await watch(scenario);
    await lease(scenario);
    await leaseExpiry(scenario);
    await lock(scenario);
    await election(scenario);
    await maintenance(scenario);
    await compaction(scenario);
    return scenario.transcript.steps;
  } finally {
    client.close();
  }
}

interface Scenario {
  client: Etcd3;
  namespace: Namespace;
  transcript: Transcript;
  relative: (revision: string | number) => number;
}

/**
 * Keys and values, each key without the scenario's prefix (a namespace's
 * ranges give keys without it already, its txn responses with it).
 */
const pairs = (kvs: IKeyValue[], prefix: string): string[][] =>
  kvs.map((kv) => {
    const key = kv.key.toString();
    return [key.startsWith(prefix) ? key.slice(prefix.length) : key, kv.value.toString()];
  });

async function kv({ client, namespace, transcript, relative }: Scenario): Promise<void> {
  const prefix = namespace.prefix.toString();
  for (const name of ["a", "b", "c"]) {
    await transcript.record(`kv.put.${name}`, async () => ({ revision: relative((await namespace.put(name).value(`value-${name}`)).header.revision) }));
  }
  await transcript.record("kv.put.prevKv", async () => (await namespace.put("a").value("value-a2").getPrevious()).value.toString());
  await transcript.record("kv.get", async () => {
    const [kv] = (await namespace.get("a").exec()).kvs;
    if (kv === undefined) return "none";
    return { value: kv.value.toString(), version: Number(kv.version), createRevision: relative(kv.create_revision), modRevision: relative(kv.mod_revision) };
  });
  await transcript.record("kv.get.missing", () => namespace.get("missing").string());
  await transcript.record("kv.range.prefix", async () => pairs((await namespace.getAll().exec()).kvs, prefix));
  await transcript.record("kv.range.limitDescending", async () => {
    const response = await namespace.getAll().limit(2).sort("Key", "Descend").exec();
    return { kvs: pairs(response.kvs, prefix), more: response.more, count: Number(response.count) };
  });
  await transcript.record("kv.range.countOnly", () => namespace.getAll().count());
  await transcript.record("kv.delete", async () => Number((await namespace.delete().key("b").exec()).deleted));
  await transcript.record("kv.delete.missing", async () => Number((await namespace.delete().key("b").exec()).deleted));
  await transcript.record("kv.range.afterDelete", () => namespace.getAll().strings());
  await transcript.record("error.putWithMissingLease", async () => (await namespace.put("leased").value("x").lease(missingLeaseId), "no error"));
  await transcript.record("error.putEmptyKey", async () => (await client.put("").value("x"), "no error"));
}

async function txn({ namespace, transcript }: Scenario): Promise<void> {
  await namespace.put("txn").value("old");
  for (const name of ["txn.cas.success", "txn.cas.failure"]) {
    await transcript.record(name, async () => {
      const response = await namespace.if("txn", "Value", "==", "old").then(namespace.put("txn").value("new")).else(namespace.get("txn")).commit();
      const outcome: Record<string, unknown> = { succeeded: response.succeeded, responses: response.responses.length };
      if (!response.succeeded) outcome.else = pairs(response.responses[0]?.response_range?.kvs ?? [], namespace.prefix.toString());
      return outcome;
    });
  }
  await transcript.record("txn.and", async () => {
    const response = await namespace.if("txn", "Version", ">", 1).and("nobody", "Create", "==", 0).then(namespace.put("txn").value("and")).commit();
    return { succeeded: response.succeeded };
  });
  await transcript.record("txn.after", () => namespace.get("txn").string());
}

async function watch({ namespace, transcript }: Scenario): Promise<void> {
  const collect = (watcher: NodeJS.EventEmitter, want: number): Promise<string[][]> =>
    new Promise((resolve) => {
      const events: string[][] = [];
      const done = () => {
        clearTimeout(timer);
        resolve(events);
      };
      const timer = setTimeout(done, 5_000);
      for (const kind of ["put", "delete"]) {
        watcher.on(kind, (kv: IKeyValue) => {
          events.push([kind.toUpperCase(), kv.key.toString(), kv.value.toString()]);
          if (events.length === want) done();
        });
      }
    });
  const live = await namespace.watch().prefix("w/").create();
  transcript.add("watch.created", live.id !== null);
  const liveEvents = collect(live, 3);
  const first = await namespace.put("w/x").value("1");
  await namespace.put("w/x").value("2");
  await namespace.delete().key("w/x");
  transcript.add("watch.events", await liveEvents);
  await live.cancel();
  const resumed = await namespace.watch().prefix("w/").startRevision(String(Number(first.header.revision) + 1)).create();
  transcript.add("watch.resume", await collect(resumed, 2));
  await resumed.cancel();
}

async function lease({ namespace, transcript }: Scenario): Promise<void> {
  const granted = namespace.lease(5, { autoKeepAlive: false });
  const leaseId = await granted.grant();
  transcript.leaseIds.add(leaseId);
  await transcript.record("lease.keepAliveOnce", async () => Number((await granted.keepaliveOnce()).TTL));
  await transcript.record("lease.put", async () => (await granted.put("leased").value("held"), "ok"));
  await transcript.record("lease.timeToLive", async () => {
    const response = await namespace.leaseClient.leaseTimeToLive({ ID: leaseId, keys: true });
    const remaining = Number(response.TTL);
    return { grantedTTL: Number(response.grantedTTL), remainingInRange: remaining > 0 && remaining <= 5, keys: response.keys.map((key) => key.toString().slice(namespace.prefix.length)) };
  });
  await transcript.record("lease.list", async () => (await namespace.leaseClient.leaseLeases()).leases.some((listed) => listed.ID === leaseId));
  await transcript.record("lease.revoke", async () => (await granted.revoke(), "ok"));
  await transcript.record("lease.keyAfterRevoke", () => namespace.get("leased").string());
  await transcript.record("lease.timeToLiveAfterRevoke", async () => Number((await namespace.leaseClient.leaseTimeToLive({ ID: leaseId })).TTL));
  await transcript.record("lease.revokeAgain", async () => (await namespace.leaseClient.leaseRevoke({ ID: leaseId }), "no error"));
  await transcript.record("lease.keepAliveAfterRevoke", async () => (await granted.keepaliveOnce(), "no error"));

  // The `lost` event: a put through a lease revoked behind its back.
  const doomed = namespace.lease(5, { autoKeepAlive: false });
  const doomedId = await doomed.grant();
  transcript.leaseIds.add(doomedId);
  await namespace.leaseClient.leaseRevoke({ ID: doomedId });
  const lost = firstArgument(doomed, "lost");
  await transcript.record("lease.putOnRevoked", async () => (await doomed.put("doomed").value("x"), "no error"));
  const lostError = await lost;
  transcript.add("lease.lost", lostError === notEmitted ? "none" : transcript.errorOutcome(lostError));
}

/**
 * A lease asked for 1 s (below etcd's minimum TTL) that nobody keeps alive
 * expires with its key, and the package then reports it lost; meanwhile one
 * it keeps alive by itself (a keep-alive every third of the TTL) lives on.
 */
async function leaseExpiry({ namespace, transcript }: Scenario): Promise<void> {
  const expiring = namespace.lease(1, { autoKeepAlive: false });
  const expiringId = await expiring.grant();
  transcript.leaseIds.add(expiringId);
  const kept = namespace.lease(1);
  transcript.leaseIds.add(await kept.grant());
  await transcript.record("lease.expiry.grantedTTL", async () => Number((await namespace.leaseClient.leaseTimeToLive({ ID: expiringId })).grantedTTL));
  await expiring.put("expiring").value("soon gone");
  await kept.put("kept").value("still here");
  let gone = false;
  for (const deadline = Date.now() + 10_000; !gone && Date.now() < deadline; ) {
    gone = (await namespace.get("expiring").string()) === null;
    if (!gone) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  transcript.add("lease.expiry.keyGone", gone);
  const lost = firstArgument(expiring, "lost");
  await transcript.record("lease.expiry.keepAlive", async () => (await expiring.keepaliveOnce(), "no error"));
  const lostError = await lost;
  transcript.add("lease.expiry.lost", lostError === notEmitted ? "none" : transcript.errorOutcome(lostError));
  await transcript.record("lease.expiry.revoke", async () => (await expiring.revoke(), "ok"));
  await transcript.record("lease.expiry.keptAlive", () => namespace.get("kept").string());
  await kept.revoke();
}

async function lock({ namespace, transcript }: Scenario): Promise<void> {
  const holder = namespace.lock("lock").ttl(10);
  await transcript.record("lock.acquire", async () => (await holder.acquire(), "ok"));
  const waiter = namespace.lock("lock").ttl(10);
  await transcript.record("lock.contended", async () => (await waiter.acquire(), "acquired"));
  await transcript.record("lock.release", async () => (await holder.release(), "ok"));
  await transcript.record("lock.reacquire", async () => (await waiter.acquire(), "ok"));
  await transcript.record("lock.releaseAgain", async () => (await waiter.release(), "ok"));
}

async function election({ namespace, transcript }: Scenario): Promise<void> {
  const election = namespace.election("election", 10);
  const campaign = election.campaign("first");
  await transcript.record("election.campaign", async () => (await campaign.wait(), "ok"));
  await transcript.record("election.leader", () => election.leader());
  const observer = await election.observe();
  transcript.add("election.observe", observer.leader() ?? "none");
  const change = firstArgument(observer, "change");
  await transcript.record("election.proclaim", async () => (await campaign.proclaim("second"), "ok"));
  const changed = await change;
  transcript.add("election.observeChange", changed === notEmitted ? "none" : changed);
  await transcript.record("election.leaderAfterProclaim", () => election.leader());
  await observer.cancel();
  await transcript.record("election.resign", async () => (await campaign.resign(), "ok"));
  await transcript.record("election.leaderAfterResign", async () => (await election.leader()) ?? "none");
}

async function maintenance({ client, transcript, relative }: Scenario): Promise<void> {
  await transcript.record("maintenance.status", async () => {
    const status = await client.maintenance.status();
    return {
      version: /^3\.4\.\d+$/.test(status.version),
      dbSize: Number(status.dbSize) > 0,
      leaderIsSelf: status.leader === status.header.member_id,
      raftIndex: Number(status.raftIndex) > 0,
      raftTerm: Number(status.raftTerm) > 0,
      headerRevised: relative(status.header.revision) > 0,
    };
  });
  await transcript.record("maintenance.memberList", async () => {
    const { members } = await client.cluster.memberList({});
    return { count: members.length, name: members[0]?.name };
  });
}

async function compaction({ client, namespace, transcript }: Scenario): Promise<void> {
  const revision = Number((await namespace.put("a").value("before compaction")).header.revision);
  await transcript.record("compaction.compact", async () => (await client.kv.compact({ revision: String(revision), physical: true }), "ok"));
  await transcript.record("compaction.getCompacted", async () => (await namespace.get("a").revision(revision - 1).string(), "no error"));
  await transcript.record("compaction.getAtCompactRevision", () => namespace.get("a").revision(revision).string());
  await transcript.record("compaction.compactAgain", async () => (await client.kv.compact({ revision: String(revision) }), "no error"));
  await transcript.record("compaction.compactFuture", async () => (await client.kv.compact({ revision: String(revision + 1000) }), "no error"));
  await transcript.record("compaction.getFuture", async () => (await namespace.get("a").revision(revision + 1000).string(), "no error"));
  await transcript.record("compaction.watchCompacted", async () => {
    const watcher = namespace.watch().key("a").startRevision(String(revision - 1)).watcher();
    const error = await firstArgument(watcher, "error");
    // A watcher the server canceled is gone from the package's books; cancel() would wait for an answer forever.
    if (error !== notEmitted) return transcript.errorOutcome(error);
    await watcher.cancel();
    return "no error";
  });
}
