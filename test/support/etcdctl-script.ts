// One etcdctl script run against a real etcd 3.4 and edgetcd, step by step:
// the differences in exit status, stdout and stderr, after masking what
// legitimately differs (ids, raft positions, timings, retry log lines).
import { etcdctlAsync, type CommandResult, type RunningServer } from "./processes.ts";

export type Step = { args: string[]; input?: string };

function splitArgs(line: string): string[] {
  const args: string[] = [];
  for (const match of line.matchAll(/"([^"]*)"|(\S+)/g)) args.push(match[1] ?? (match[2] as string));
  return args;
}

/** A step written as a command line; double quotes group an argument. */
export const step = (line: string, input?: string): Step => ({ args: splitArgs(line), input });

export function normalizeEtcdctl(text: string): string {
  return text
    .replace(/"(cluster_id|member_id|ID|leader)":\d+/g, '"$1":<id>')
    .replace(/"(raft_term|raftIndex|raftTerm|raftAppliedIndex|dbSize|dbSizeInUse)":\d+/g, '"$1":<n>')
    .replace(/127\.0\.0\.1:\d+/g, "<endpoint>")
    .replace(/took = [0-9.]+[µmn]?s/g, "took = <t>")
    .replace(/"ts":"[^"]*"/g, '"ts":<ts>')
    .replace(/client-[0-9a-f-]{36}/g, "client-<uuid>")
    .replace(/, [0-9a-f]+, \d+, \d+/g, ", <hash>")
    // etcd 3.4 answers a non-root defrag, hash or snapshot with its internal
    // error (Unknown, "auth: permission denied"); 3.5 and edgetcd with the
    // gRPC error every other RPC gives (PermissionDenied).
    .replaceAll("rpc error: code = Unknown desc = auth: permission denied", "etcdserver: permission denied")
    // etcdctl's retry log lines: how many appear depends on timing, not on the answer.
    .split("\n")
    .filter((line) => !line.includes('"msg":"retrying of unary invoker failed"'))
    .join("\n");
}

async function runScript(server: RunningServer, script: readonly Step[], globalArgs: readonly string[]): Promise<CommandResult[]> {
  const results: CommandResult[] = [];
  for (const { args, input } of script) results.push(await etcdctlAsync(server.endpoint, [...globalArgs, ...args], input));
  return results;
}

/** Runs `script` on both servers at once; returns one line per step that differs (empty: all alike). */
export async function scriptDifferences(etcd: RunningServer, edgetcd: RunningServer, script: readonly Step[], globalArgs: readonly string[] = []): Promise<string[]> {
  const [expected, actual] = await Promise.all([runScript(etcd, script, globalArgs), runScript(edgetcd, script, globalArgs)]);
  const mismatches: string[] = [];
  for (const [index, { args }] of script.entries()) {
    const want = expected[index] as CommandResult;
    const got = actual[index] as CommandResult;
    const label = `#${index} etcdctl ${args.join(" ")}`;
    if (got.status !== want.status) mismatches.push(`${label}: exit ${got.status}, etcd ${want.status} (stderr: ${got.stderr.trim()} | etcd: ${want.stderr.trim()})`);
    else if (normalizeEtcdctl(got.stdout) !== normalizeEtcdctl(want.stdout)) {
      mismatches.push(`${label}: stdout\n  edgetcd: ${JSON.stringify(got.stdout)}\n  etcd:    ${JSON.stringify(want.stdout)}`);
    } else if (normalizeEtcdctl(got.stderr) !== normalizeEtcdctl(want.stderr)) {
      mismatches.push(`${label}: stderr\n  edgetcd: ${JSON.stringify(normalizeEtcdctl(got.stderr))}\n  etcd:    ${JSON.stringify(normalizeEtcdctl(want.stderr))}`);
    }
  }
  return mismatches;
}
