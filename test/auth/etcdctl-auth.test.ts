// etcd's auth driven by the real etcdctl 3.4 against a real etcd 3.4 and
// edgetcd with one script: users, roles, permissions with etcd's range rules,
// root rules, enable/disable, wrong passwords, and a user without rights
// trying KV, txn sub-operations, lease revoke and admin RPCs. Every step must
// print the same output and exit status on both.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { etcdBesideEdgetcd } from "../support/processes.ts";
import { scriptDifferences, step, type Step } from "../support/etcdctl-script.ts";

const root = "--user root:rootpw";
const alice = "--user alice:alicepw";
const bob = "--user bob:bobpw";

const script: Step[] = [
  // Before auth: management works for anyone, enabling needs a root user.
  step("auth enable"),
  step("user add root:rootpw"),
  step("user add root:again"),
  step("user add alice:alicepw"),
  step("user add bob:bobpw"),
  step("role add reader"),
  step("role add reader"),
  step("role add writer"),
  step("role grant-permission reader read /r/ --prefix"),
  step("role grant-permission writer readwrite /w/ --prefix"),
  step("role grant-permission writer write /single"),
  step("role grant-permission writer read /open --from-key"),
  step("role grant-permission writer read /a /c"),
  step("role grant-permission writer read /c /e"),
  step("role grant-permission nobody read /x"),
  step("user grant-role alice reader"),
  step("user grant-role alice writer"),
  step("user grant-role bob reader"),
  step("user grant-role nobody reader"),
  step("user grant-role alice nothing"),
  step("role get writer"),
  step("role list"),
  step("user list"),
  step("user get alice"),
  step("user get alice --detail"),
  step("put /r/1 one"),
  step("put /secret s"),
  // Enabling grants root the root role as etcdctl does, then requires users.
  step("auth enable"),
  step("get /r/1"),
  step(`${root} get /secret`),
  step(`--user root:wrong get /secret`),
  step(`--user nobody:pw get /secret`),
  // Rights by range.
  step(`${alice} put /w/1 a`),
  step(`${alice} get /w/ --prefix`),
  step(`${alice} get /r/ --prefix`),
  step(`${alice} put /r/2 nope`),
  step(`${alice} get /secret`),
  step(`${alice} put /single x`),
  step(`${alice} get /single`),
  step(`${alice} put /singlex x`),
  step(`${alice} get /open --from-key`),
  step(`${alice} get /a /e`),
  step(`${alice} get /a /f`),
  step(`${alice} get /r --from-key`),
  step(`${alice} get /r/1 --prev-kv`),
  step(`${alice} put /w/2 b --prev-kv`),
  step(`${alice} del /w/ --prefix --prev-kv`),
  step(`${alice} del /secret`),
  step(`${alice} get "" --prefix`),
  // Txn: compares and both branches are checked, whichever runs.
  step(`${alice} txn`, 'value("/r/1") = "one"\n\nput /w/t yes\n\nput /secret no\n\n'),
  step(`${alice} txn`, 'value("/secret") = "s"\n\nput /w/t yes\n\n\n'),
  step(`${alice} txn`, 'value("/r/1") = "one"\n\nput /w/t yes\nget /w/t\n\nget /r/1\n\n'),
  step(`${alice} txn`, 'value("/r/1") = "one"\n\nget /r/1\n\nget /secret\n\n'),
  step(`${root} get /secret`),
  // Admin only.
  step(`${alice} user list`),
  step(`${alice} role list`),
  step(`${alice} user add eve:evepw`),
  step(`${alice} role get reader`),
  step(`${alice} role get writer`),
  step(`${bob} role get writer`),
  step(`${bob} user get alice`),
  step(`${alice} user get alice`),
  step(`${alice} auth disable`),
  step(`${alice} defrag`),
  step(`${alice} compaction 1`),
  step(`${alice} endpoint hashkv`),
  // Root rules while enabled.
  step(`${root} user delete root`),
  step(`${root} user revoke-role root root`),
  step(`${root} role delete root`),
  step(`${root} role revoke-permission writer /nothing`),
  step(`${root} role revoke-permission writer /single`),
  step(`${alice} put /single again`),
  step(`${root} user revoke-role alice nothing`),
  step(`${root} user revoke-role bob reader`),
  step(`${bob} get /r/1`),
  // Password change, deletion.
  step(`${root} user passwd alice`, "newpw\n"),
  step(`--interactive=false ${root} user passwd alice`, "newpw\n"),
  step(`${alice} get /w/t`),
  step(`--user alice:newpw get /w/t`),
  step(`${root} user delete bob`),
  step(`${bob} get /r/1`),
  step(`${root} role delete reader`),
  step(`${root} user get alice`),
  step(`${root} auth disable`),
  step("get /secret"),
  step("user list"),
  step("auth disable"),
];

describe("etcdctl's user, role and auth commands on etcd 3.4 and edgetcd alike", () => {
  // The lowest bcrypt cost keeps the script quick; the cost is a flag both take.
  const servers = etcdBesideEdgetcd({ extraArgs: ["--bcrypt-cost", "4"] });

  test("every step prints the same output and exit status", { timeout: 300_000 }, async () => {
    const mismatches = await scriptDifferences(servers.etcd, servers.edgetcd, script);
    assert.deepEqual(mismatches, []);
  });
});
