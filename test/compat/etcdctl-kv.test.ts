// The real etcdctl 3.4 drives a real etcd 3.4 and edgetcd with one script; the
// outputs must match except for ids, sizes, versions and raft positions.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { etcdctlAsync, startEdgetcd, startEtcd, type CommandResult, type RunningServer } from "../support/processes.ts";

type Step = { args: string[]; input?: string };
const step = (line: string, input?: string): Step => ({ args: splitArgs(line), input });

function splitArgs(line: string): string[] {
  const args: string[] = [];
  for (const match of line.matchAll(/"([^"]*)"|(\S+)/g)) args.push(match[1] ?? (match[2] as string));
  return args;
}

const script: Step[] = [
  step("put foo bar"),
  step("put foo2 bar2"),
  step("put foo3 bar3 --prev-kv"),
  step("put foo bar-again --prev-kv"),
  step("put foo bar-again-2 --prev-kv -w json"),
  step("put a 1"),
  step("put b 2"),
  step("put c 3"),
  step("put z 26"),
  step("get foo"),
  step("get nothing"),
  step("get foo --prefix"),
  step("get foo --prefix --keys-only"),
  step("get foo --prefix --count-only -w json"),
  step("get foo --prefix --print-value-only"),
  step('get "" --from-key'),
  step("get a --from-key --limit 2"),
  step("get a --from-key --limit 2 -w json"),
  step("get foo --rev 1"),
  step("get foo --rev 4 -w json"),
  step("get foo --prefix --sort-by=MODIFY --order=DESCEND"),
  step("get foo --prefix --sort-by=VALUE --order=ASCEND"),
  step("get foo --prefix --sort-by=VERSION"),
  step("get foo --prefix --sort-by=CREATE --order=DESCEND"),
  step("get foo --prefix --order=DESCEND"),
  step("get a c"),
  step("get foo -w json"),
  step("get foo --prefix -w json"),
  step("get foo --consistency=s"),
  step("get a --from-key --keys-only --limit 3 --order=DESCEND"),
  step("del foo3 --prev-kv"),
  step("del nothing"),
  step("del a c --prev-kv"),
  step("get a --from-key"),
  step("txn", 'value("foo") = "bar-again-2"\n\nput foo txn-yes\nget foo\n\nput foo txn-no\n\n'),
  step("txn", 'mod("foo2") > "0"\nversion("z") = "1"\n\ndel z\nput y 25\n\nput failed 1\n\n'),
  step("txn", 'create("nothing") = "0"\n\nget foo --prefix\n\n\n'),
  step("txn -w json", 'value("foo") = "not-this"\n\nput x 1\n\nget foo\n\n'),
  step("txn", 'value("foo") != "zzz"\n\nput q 1\n\n\n'),
  step("get q"),
  step("del fo --prefix"),
  step("get fo --prefix"),
  step("put k1 v1"),
  step("put k1 v2"),
  step("put k1 v3"),
  step("get k1 --rev 0 -w json"),
  step("compaction 5"),
  step("get k1 --rev 3"),
  step("get k1 --rev 5"),
  step("get k1 --rev 1000"),
  step("compaction 4"),
  step("compaction 1000"),
  step("compaction 6 --physical"),
  step("del \"\" --from-key --prev-kv"),
  step("get \"\" --from-key"),
  step("put emptyval \"\""),
  step("get emptyval -w json"),
  step("endpoint status -w json"),
  step("member list -w json"),
  step("endpoint health"),
];

/** Masks what legitimately differs between two servers: ids, sizes, versions, raft positions. */
function normalize(text: string): string {
  return text
    .replace(/"(cluster_id|member_id|ID|leader)":\d+/g, '"$1":<id>')
    .replace(/"(raft_term|raftIndex|raftTerm|raftAppliedIndex|dbSize|dbSizeInUse)":\d+/g, '"$1":<n>')
    .replace(/"version":"[^"]*"/g, '"version":<v>')
    .replace(/"(peerURLs|clientURLs)":\["[^"]*"\]/g, '"$1":<urls>')
    .replace(/"name":"[^"]*"/g, '"name":<name>')
    .replace(/127\.0\.0\.1:\d+/g, "<endpoint>")
    .replace(/took = [0-9.]+[µmn]?s/g, "took = <t>")
    .replace(/"ts":"[^"]*"/g, '"ts":<ts>')
    .replace(/client-[0-9a-f-]{36}/g, "client-<uuid>");
}

async function runScript(server: RunningServer): Promise<CommandResult[]> {
  const results: CommandResult[] = [];
  for (const { args, input } of script) results.push(await etcdctlAsync(server.endpoint, args, input));
  return results;
}

describe("etcdctl drives etcd 3.4 and edgetcd alike", () => {
  let etcd: RunningServer;
  let edgetcd: RunningServer;
  before(async () => {
    [etcd, edgetcd] = await Promise.all([startEtcd(), startEdgetcd()]);
  }, { timeout: 120_000 });
  after(async () => {
    await Promise.all([etcd?.stop(), edgetcd?.stop()]);
  });

  test("every step prints the same output and exit status", async () => {
    const [expected, actual] = await Promise.all([runScript(etcd), runScript(edgetcd)]);
    for (const [index, { args }] of script.entries()) {
      const want = expected[index] as CommandResult;
      const got = actual[index] as CommandResult;
      const label = `etcdctl ${args.join(" ")}`;
      assert.equal(got.status, want.status, `${label}: exit status (stderr: ${got.stderr})`);
      assert.equal(normalize(got.stdout), normalize(want.stdout), `${label}: stdout`);
      assert.equal(normalize(got.stderr), normalize(want.stderr), `${label}: stderr`);
    }
  });
});
