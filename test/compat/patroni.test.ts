// A real application that keeps its leader state in etcd, run unchanged
// against etcd 3.4 and edgetcd (issue 21): Patroni, the PostgreSQL HA manager
// (Debian's patroni 3.0 over Debian's PostgreSQL), with its `etcd3` DCS,
// which speaks etcd's v3 JSON gateway. The same steps run at once against
// both servers, one Patroni member each:
//
// 1. Patroni bootstraps a new cluster (initdb) and takes the leader key;
// 2. its REST API says it leads, and etcdctl finds the leader key holding its
//    name under its lease, its member key, /initialize (the database's system
//    identifier) and /config (bootstrap.dcs);
// 3. after more than a TTL the leader key is still there, on the same lease
//    (Patroni keeps it alive through /v3/lease/keepalive);
// 4. `patronictl edit-config` raises the TTL and sets work_mem: Patroni sees
//    the change through its watch, moves its keys to a new lease of the new
//    TTL, and PostgreSQL takes work_mem;
// 5. SIGTERM: Patroni stops PostgreSQL and deletes its leader key.
//
// Each step's outcome is normalized (no IDs, revisions, ports or times), and
// the two transcripts must be equal. Patroni reaches each server through a
// recording proxy, and the transcript ends with what it asked of the gateway
// and the shape of every answer (the routes, their statuses, every JSON field
// seen), so an answer Patroni tolerates but reads differently still shows.
// The expectations below check etcd's transcript, so nothing vacuous passes.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { etcdBesideEdgetcd, etcdctlAsync, type RunningServer } from "../support/processes.ts";
import { startRecordingProxy, type Exchange, type RecordingProxy } from "../support/recording-proxy.ts";
import { startPatroni, type PatroniMember } from "./clients/patroni.ts";
import type { Step } from "./clients/etcd3-npm.ts";

const scope = "edgetcd-patroni";
const memberName = "pg-1";
const prefix = `/service/${scope}/`;
const ttlSeconds = 10;
const editedTtlSeconds = 12;
const dcs = { ttlSeconds, loopWaitSeconds: 2, retryTimeoutSeconds: 4 };

/** What one side started, for the after hook to end when a step failed. */
const started: Array<{ member?: PatroniMember; proxy?: RecordingProxy }> = [];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls probe until it gives a value; past the deadline, or once Patroni has exited, fails naming what was awaited. */
async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, member: PatroniMember): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    const exitStatus = member.exitStatus();
    const failure = exitStatus !== undefined ? `Patroni exited (${exitStatus})` : Date.now() > deadline ? `not within ${timeoutMs} ms` : undefined;
    if (failure !== undefined) throw new Error(`${what}: ${failure}; Patroni's output:\n${member.output().slice(-4000)}`);
    await sleep(200);
  }
}

interface StoredKey {
  value: string;
  /** Hexadecimal, as etcdctl takes it; "0" when the key has no lease. */
  lease: string;
  modRevision: number;
}

async function etcdctlOk(server: RunningServer, args: string[]): Promise<string> {
  const result = await etcdctlAsync(server.endpoint, args);
  if (result.status !== 0) throw new Error(`etcdctl ${args.join(" ")} against ${server.kind}: exit ${result.status}: ${result.stderr}`);
  return result.stdout;
}

async function getKey(server: RunningServer, key: string): Promise<StoredKey | undefined> {
  const stdout = await etcdctlOk(server, ["get", key, "-w", "json"]);
  const kv = (JSON.parse(stdout) as { kvs?: Array<{ value: string; mod_revision: number }> }).kvs?.[0];
  if (kv === undefined) return undefined;
  // A lease ID is an int64, past what a JavaScript number holds exactly: read from the text.
  const lease = /"lease":(\d+)/.exec(stdout)?.[1] ?? "0";
  return { value: Buffer.from(kv.value, "base64").toString(), lease: BigInt(lease).toString(16), modRevision: kv.mod_revision };
}

/** Patroni's keys of the scope, relative to it, sorted. */
async function keysUnder(server: RunningServer): Promise<string[]> {
  const stdout = await etcdctlOk(server, ["get", prefix, "--prefix", "--keys-only"]);
  return stdout.split("\n").filter((line) => line !== "").map((key) => key.slice(prefix.length)).sort();
}

async function timeToLive(server: RunningServer, lease: string): Promise<{ grantedTtl: number; remainingTtl: number; keys: string[] }> {
  const stdout = await etcdctlOk(server, ["lease", "timetolive", lease, "--keys", "-w", "json"]);
  const answer = JSON.parse(stdout) as { ttl: number; "granted-ttl": number; keys: string[] | null };
  // etcd keeps a lease's keys in a Go map: their order is not etcd's to promise.
  const keys = (answer.keys ?? []).map((key) => Buffer.from(key, "base64").toString().slice(prefix.length)).sort();
  return { grantedTtl: answer["granted-ttl"], remainingTtl: answer.ttl, keys };
}

/**
 * Waits until a loop of Patroni's that began after the one that wrote
 * `revision` has run: the leader writes /status once a loop, after its leader
 * key, so the second /status written after `revision` is a later loop's.
 */
async function laterLoop(server: RunningServer, revision: number, member: PatroniMember): Promise<void> {
  let after = revision;
  for (const ordinal of ["first", "second"]) {
    const status = await waitFor(`the ${ordinal} /status written after revision ${revision}`, 20_000, async () => {
      const stored = await getKey(server, `${prefix}status`);
      return stored !== undefined && stored.modRevision > after ? stored : undefined;
    }, member);
    after = status.modRevision;
  }
}

async function restJson(member: PatroniMember, path: string): Promise<Record<string, unknown>> {
  const answer = await member.rest(path);
  if (answer === undefined) throw new Error(`Patroni's REST API did not answer ${path}`);
  return JSON.parse(answer.body) as Record<string, unknown>;
}

/** The steps, against one server. */
async function patroniScenario(server: RunningServer): Promise<Step[]> {
  const steps: Step[] = [];
  const add = (name: string, outcome: unknown) => steps.push([name, outcome]);
  const side: { member?: PatroniMember; proxy?: RecordingProxy } = {};
  started.push(side);
  const proxy = (side.proxy = await startRecordingProxy(server.clientPort));
  const member = (side.member = await startPatroni({ scope, name: memberName, etcdPort: proxy.port, ...dcs }));

  // 1, 2: leader, by Patroni's word and in etcd.
  const leaderAnswer = await waitFor("Patroni's GET /leader answering 200", 60_000, async () => {
    const answer = await member.rest("/leader");
    return answer?.status === 200 ? answer : undefined;
  }, member);
  add("patroni.leader", leaderAnswer.status);
  const status = await restJson(member, "/patroni");
  const patroni = status.patroni as { scope?: string } | undefined;
  add("patroni.status", { state: status.state, role: status.role, scope: patroni?.scope });

  const leader = await waitFor("the leader key", 10_000, () => getKey(server, `${prefix}leader`), member);
  add("etcd.leader", { value: leader.value, leased: leader.lease !== "0" });
  add("etcd.leader.lease", await timeToLive(server, leader.lease).then(({ grantedTtl, remainingTtl, keys }) => ({ grantedTtl, alive: remainingTtl > 0, keys })));
  // The member key shows the role after the promotion Patroni reports on its next loop.
  const memberKey = await waitFor("the member key with the leader's role", 10_000, async () => {
    const stored = await getKey(server, `${prefix}members/${memberName}`);
    return stored !== undefined && stored.value.includes(`"role":"${String(status.role)}"`) ? stored : undefined;
  }, member);
  const memberData = JSON.parse(memberKey.value) as Record<string, unknown>;
  add("etcd.member", {
    role: memberData.role,
    state: memberData.state,
    apiUrl: memberData.api_url === `http://127.0.0.1:${member.restPort}/patroni`,
    connectionUrl: memberData.conn_url === `postgres://127.0.0.1:${member.postgresPort}/postgres`,
    leaseOfLeader: memberKey.lease === leader.lease,
  });
  const initialize = await getKey(server, `${prefix}initialize`);
  add("etcd.initialize", { isSystemIdentifier: initialize !== undefined && initialize.value === status.database_system_identifier, leased: initialize?.lease !== "0" });
  const config = await getKey(server, `${prefix}config`);
  add("etcd.config", config === undefined ? "missing" : JSON.parse(config.value));
  const listed = await member.patronictl(["list", "-f", "json"]);
  add("patronictl.list", listed.status !== 0 ? listed : (JSON.parse(listed.stdout) as Array<Record<string, unknown>>).map(({ Host: _, ...rest }) => rest));

  // 3: past a TTL, the same lease still holds the leader key.
  await sleep((ttlSeconds + 1) * 1_000);
  const later = await getKey(server, `${prefix}leader`);
  add("etcd.leader.afterTtl", {
    value: later?.value,
    sameLease: later?.lease === leader.lease,
    unchanged: later?.modRevision === leader.modRevision,
    alive: later !== undefined && (await timeToLive(server, later.lease)).remainingTtl > 0,
  });

  // 4: a new TTL and a PostgreSQL parameter through patronictl.
  const edited = await member.patronictl(["edit-config", "--set", `ttl=${editedTtlSeconds}`, "--set", "postgresql.parameters.work_mem=8MB", "--force"]);
  add("patronictl.editConfig", { status: edited.status, changed: edited.stdout.includes("Configuration changed") });
  const editedConfig = await getKey(server, `${prefix}config`);
  add("etcd.config.afterEdit", editedConfig === undefined ? "missing" : JSON.parse(editedConfig.value));
  const moved = await waitFor("the leader key on a new lease", 20_000, async () => {
    const stored = await getKey(server, `${prefix}leader`);
    return stored !== undefined && stored.lease !== leader.lease && stored.lease !== "0" ? stored : undefined;
  }, member);
  add("postgresql.workMem", await waitFor("work_mem 8MB in PostgreSQL", 20_000, async () => {
    const workMem = await member.show("work_mem").catch(() => undefined);
    return workMem === "8MB" ? workMem : undefined;
  }, member));

  // By a later loop Patroni has moved its member key to the new lease too.
  await laterLoop(server, moved.modRevision, member);
  const movedLease = await timeToLive(server, moved.lease);
  add("etcd.leader.afterEdit", { value: moved.value, grantedTtl: movedLease.grantedTtl, keys: movedLease.keys });

  // 5: a clean stop gives the leader key up; the rest stays for the next start.
  // Patroni deletes its leader key with a txn comparing the key's mod revision
  // as its last loop read it: stopped in the loop that moved the key to the new
  // lease, the compare fails and the key stays until its lease expires (on etcd
  // as on edgetcd), hence the later loop above.
  add("patroni.stop", { exitCode: await member.stop(30_000) });
  add("etcd.keys.afterStop", await keysUnder(server));
  add("etcd.leader.afterStop", (await getKey(server, `${prefix}leader`))?.value ?? "none");

  add("gateway", gatewayUse(proxy.exchanges));
  return steps;
}

/**
 * What Patroni asked of the gateway, per route: the statuses it was
 * answered, and every JSON field path seen in its requests and answers
 * (streamed answers are a JSON object a line). Paths, not values: IDs,
 * revisions and ports differ between the servers.
 */
function gatewayUse(exchanges: readonly Exchange[]): Record<string, { statuses: number[]; requestFields: string[]; answerFields: string[] }> {
  const routes = new Map<string, { statuses: Set<number>; requestFields: Set<string>; answerFields: Set<string> }>();
  for (const exchange of exchanges) {
    // Patroni gave up before an answer came (it waits a share of retry_timeout,
    // about 2 s here, then retries; a put behind a slow fsync can take longer),
    // or it exited meanwhile: nothing was answered to compare.
    if (exchange.status === undefined) continue;
    const name = `${exchange.method} ${exchange.path}`;
    const route = routes.get(name) ?? { statuses: new Set(), requestFields: new Set(), answerFields: new Set() };
    routes.set(name, route);
    route.statuses.add(exchange.status);
    fieldPaths(exchange.requestBody, route.requestFields);
    for (const line of exchange.responseBody.split("\n")) fieldPaths(line, route.answerFields);
  }
  // edgetcd's /version names its own version beside etcd's (README, version policy).
  routes.get("GET /version")?.answerFields.delete("edgetcd");
  const sorted = (set: Set<string>) => [...set].sort();
  return Object.fromEntries(
    [...routes.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, route]) => [name, { statuses: [...route.statuses].sort(), requestFields: sorted(route.requestFields), answerFields: sorted(route.answerFields) }]),
  );
}

/** Adds every field path of a JSON text ("result.events[].kv.lease") to paths; a text that is no JSON adds "<not JSON>". */
function fieldPaths(text: string, paths: Set<string>): void {
  if (text.trim() === "") return;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    paths.add("<not JSON>");
    return;
  }
  const walk = (node: unknown, path: string) => {
    if (Array.isArray(node)) for (const item of node) walk(item, `${path}[]`);
    else if (typeof node === "object" && node !== null) {
      for (const [key, child] of Object.entries(node)) {
        const childPath = path === "" ? key : `${path}.${key}`;
        paths.add(childPath);
        walk(child, childPath);
      }
    }
  };
  walk(value, "");
}

/** Steps of etcd's transcript that must hold these outcomes. */
const expected: Step[] = [
  ["patroni.leader", 200],
  ["etcd.leader", { value: memberName, leased: true }],
  ["etcd.leader.lease", { grantedTtl: ttlSeconds, alive: true, keys: ["leader", `members/${memberName}`] }],
  ["etcd.initialize", { isSystemIdentifier: true, leased: false }],
  ["etcd.config", { ttl: ttlSeconds, loop_wait: 2, retry_timeout: 4 }],
  ["etcd.leader.afterTtl", { value: memberName, sameLease: true, unchanged: true, alive: true }],
  ["patronictl.editConfig", { status: 0, changed: true }],
  ["etcd.config.afterEdit", { loop_wait: 2, postgresql: { parameters: { work_mem: "8MB" } }, retry_timeout: 4, ttl: editedTtlSeconds }],
  ["etcd.leader.afterEdit", { value: memberName, grantedTtl: editedTtlSeconds, keys: ["leader", `members/${memberName}`] }],
  ["postgresql.workMem", "8MB"],
  ["patroni.stop", { exitCode: 0 }],
  ["etcd.keys.afterStop", ["config", "initialize", `members/${memberName}`, "status"]],
  ["etcd.leader.afterStop", "none"],
];

/** The gateway routes Patroni's etcd3 DCS must have used, on etcd. */
const routesUsed = ["POST /v3/kv/range", "POST /v3/kv/put", "POST /v3/kv/txn", "POST /v3/lease/grant", "POST /v3/lease/keepalive", "POST /v3/watch"];

function fulfilled<T>(result: PromiseSettledResult<T>): T {
  if (result.status === "rejected") throw result.reason;
  return result.value;
}

describe("Patroni keeps its leader in etcd 3.4 and in edgetcd alike", () => {
  // Before the servers' own after hook (registered next): Patroni and its PostgreSQL end first.
  after(async () => {
    for (const { member, proxy } of started) {
      await member?.cleanUp();
      await proxy?.close();
    }
  });
  const servers = etcdBesideEdgetcd();

  test("bootstrap, leader key and lease, the lease kept past its TTL, edit-config, clean stop", { timeout: 120_000 }, async () => {
    const [etcdRun, edgetcdRun] = await Promise.allSettled([patroniScenario(servers.etcd), patroniScenario(servers.edgetcd)]);
    const fromEtcd = fulfilled(etcdRun);
    const fromEdgetcd = fulfilled(edgetcdRun);
    const etcdByName = new Map(fromEtcd);
    for (const [name, outcome] of expected) assert.deepEqual(etcdByName.get(name), outcome, `etcd 3.4's ${name}`);
    const status = etcdByName.get("patroni.status") as { role: string; state: string };
    assert.ok(["master", "primary"].includes(status.role) && status.state === "running", JSON.stringify(status));
    const gateway = etcdByName.get("gateway") as Record<string, { statuses: number[] }>;
    for (const route of routesUsed) assert.deepEqual(gateway[route]?.statuses, [200], `etcd 3.4's answers to Patroni's ${route}`);
    // Same steps in the same order, each with the same outcome.
    assert.deepEqual(fromEdgetcd, fromEtcd);
  });
});
