// End checks through a client we did not write: the real etcdctl 3.4 (Go
// clientv3), run after a scenario's own checks on the same cluster. It writes
// one marker key, waits until every member reports HashKV at that revision
// (all equal), and reads the whole keyspace linearizably, so a scenario can
// count acknowledged writes missing from what an independent client sees.
import { etcdctlAsync } from "../support/processes.ts";
import { sleep, type FaultCluster } from "./faults.ts";

export interface EtcdctlKeyValue {
  value: string;
  modRevision: number;
}

export interface IndependentCheck {
  /** undefined when the marker write never succeeded. */
  revision: number | undefined;
  hashesEqual: boolean;
  hashes: string[];
  /** The whole keyspace as etcdctl read it; undefined if no read succeeded. */
  keys: Map<string, EtcdctlKeyValue> | undefined;
}

const markerKey = "__independent-check";

interface PutJson {
  header?: { revision?: number };
}
interface HashJson {
  Endpoint: string;
  HashKV?: { hash?: number };
}
interface GetJson {
  kvs?: Array<{ key: string; value?: string; mod_revision?: number }>;
}

const fromBase64 = (text: string | undefined) => Buffer.from(text ?? "", "base64").toString("utf8");

/** Runs etcdctl against `endpoint` until it exits 0 (or the deadline passes), parsing its JSON output. */
async function etcdctlJson<T>(endpoint: string, args: string[], deadline: number): Promise<T | undefined> {
  while (Date.now() < deadline) {
    const result = await etcdctlAsync(endpoint, [...args, "-w", "json"]);
    if (result.status === 0) {
      try {
        return JSON.parse(result.stdout) as T;
      } catch {
        // a partial line: try again
      }
    }
    await sleep(200);
  }
  return undefined;
}

export async function independentCheck(cluster: FaultCluster, deadlineMs = 30_000): Promise<IndependentCheck> {
  const deadline = Date.now() + deadlineMs;
  const all = cluster.endpoints().join(",");
  const put = await etcdctlJson<PutJson>(all, ["put", markerKey, String(Date.now())], deadline);
  const revision = put?.header?.revision;
  if (revision === undefined) return { revision: undefined, hashesEqual: false, hashes: [], keys: undefined };
  const hashes: string[] = [];
  for (const member of cluster.members) {
    // A member behind the marker answers "future revision": retried until it catches up.
    const answer = await etcdctlJson<HashJson[]>(cluster.endpoint(member), ["endpoint", "hashkv", "--rev", String(revision)], deadline);
    hashes.push(`${member.name}:${answer?.[0]?.HashKV?.hash ?? "unavailable"}`);
  }
  const values = hashes.map((entry) => entry.split(":")[1]);
  const hashesEqual = new Set(values).size === 1 && !values.includes("unavailable");
  const got = await etcdctlJson<GetJson>(all, ["get", "", "--from-key"], deadline);
  const keys = got === undefined
    ? undefined
    : new Map((got.kvs ?? []).map((kv) => [fromBase64(kv.key), { value: fromBase64(kv.value), modRevision: Number(kv.mod_revision ?? 0) }]));
  keys?.delete(markerKey);
  return { revision, hashesEqual, hashes, keys };
}

/** A note for the run's log when the independent check found something. */
export function describeIndependent(check: IndependentCheck): string | undefined {
  if (check.revision === undefined) return "etcdctl: the marker write did not succeed";
  if (!check.hashesEqual) return `etcdctl: HashKV differs at ${check.revision}: ${check.hashes.join(" ")}`;
  if (check.keys === undefined) return "etcdctl: the final read did not succeed";
  return undefined;
}

export interface EtcdctlRegister {
  value: string | null;
  version: number;
  modRevision: number;
}

/**
 * One linearizable etcdctl read of the keys [from, to) on one member, with
 * the time it was called and returned on `now`'s clock, for a scenario to
 * put in its history (so the checker holds etcdctl's view, taken under the
 * same faults, to the same rules); undefined when etcdctl failed.
 */
export async function etcdctlRead(
  endpoint: string,
  from: string,
  to: string,
  now: () => number,
): Promise<{ call: number; return: number; keys: Map<string, EtcdctlRegister> } | undefined> {
  const call = now();
  const result = await etcdctlAsync(endpoint, ["--command-timeout=2s", "get", from, to, "-w", "json"]);
  const returned = now();
  if (result.status !== 0) return undefined;
  let got: GetJson & { kvs?: Array<{ version?: number }> };
  try {
    got = JSON.parse(result.stdout) as GetJson & { kvs?: Array<{ version?: number }> };
  } catch {
    return undefined;
  }
  const keys = new Map<string, EtcdctlRegister>();
  for (const kv of got.kvs ?? []) {
    keys.set(fromBase64(kv.key), { value: fromBase64(kv.value), version: Number(kv.version ?? 0), modRevision: Number(kv.mod_revision ?? 0) });
  }
  return { call, return: returned, keys };
}
