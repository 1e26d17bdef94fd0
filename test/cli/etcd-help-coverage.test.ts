// Every flag real etcd lists in `etcd --help` has a status in edgetcd's table
// (src/cli/flag-table.ts): implemented, refused or warned. A flag etcd gains
// (a newer etcd installed) fails here until someone decides what it means.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { flagDefinitions } from "../../src/cli/flags.ts";

/** Flags etcd 3.4 lists, read from its own help text. */
function etcdHelpFlags(): string[] {
  const result = spawnSync("/usr/bin/etcd", ["--help"], { encoding: "utf8", timeout: 30_000 });
  const text = `${result.stdout ?? ""}${result.stderr ?? ""}`;
  assert.match(text, /Usage:/, `etcd --help printed no usage (is etcd 3.4 installed at /usr/bin/etcd?):\n${text}`);
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    // A flag's own line ("  --name 'default'"), or a command line ("  etcd -h | --help").
    const flagLine = /^\s+--([a-z0-9][a-z0-9-]*)/.exec(line);
    if (flagLine !== null) names.add(flagLine[1] as string);
    if (/^\s+etcd -/.test(line)) for (const match of line.matchAll(/\s--?([a-z0-9][a-z0-9-]*)/g)) names.add(match[1] as string);
  }
  return [...names];
}

/** Ours that etcd 3.4's help does not list: later etcd versions', etcd's hidden ones, edgetcd's own. */
const notInEtcdHelp = new Set([
  "listen-client-http-urls", // etcd 3.5.8
  "experimental-snapshot-catchup-entries", // etcd 3.5.14
  "experimental-lease-checkpoint-interval", // edgetcd's (etcd 3.4 fixes it at 5m)
  "unsafe-no-fsync", // etcd 3.4.23 accepts it without listing it
  "experimental-enable-lease-checkpoint-persist", // likewise
]);

test("every flag in `etcd --help` has a status in edgetcd's table", () => {
  const ours = new Map(flagDefinitions.map((definition) => [definition.name, definition]));
  const etcdFlags = etcdHelpFlags();
  assert.ok(etcdFlags.length > 80, `only ${etcdFlags.length} flags read from etcd --help`);
  const missing = etcdFlags.filter((name) => !ours.has(name));
  assert.deepEqual(missing, [], `etcd flags with no status in src/cli/flag-table.ts: ${missing.join(", ")}`);
  for (const name of etcdFlags) {
    const status = ours.get(name)?.status;
    assert.ok(status !== undefined && ["implemented", "refused", "warned"].includes(status.kind), name);
  }
});

test("every flag of ours that etcd's help does not list is known to be extra", () => {
  const etcdFlags = new Set(etcdHelpFlags());
  const extra = flagDefinitions
    .map((definition) => definition.name)
    .filter((name) => !etcdFlags.has(name) && !notInEtcdHelp.has(name));
  assert.deepEqual(extra, []);
});
