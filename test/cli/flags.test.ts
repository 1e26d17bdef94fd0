// etcd's command line: Go flag syntax, ETCD_* variables, unknown flags refused.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { FlagError, parseDurationMs, parseFlags } from "../../src/cli/flags.ts";
import { serverConfigFromFlags } from "../../src/server/config.ts";
import { repoRoot, testRuntimeName } from "../support/processes.ts";

describe("flags", () => {
  test("Go flag syntax: -name, --name=value, --name value, bare booleans", () => {
    const flags = parseFlags(["-name", "n1", "--data-dir=/tmp/x", "--pre-vote", "--max-txn-ops", "64"], {});
    assert.equal(flags.values.get("name"), "n1");
    assert.equal(flags.values.get("data-dir"), "/tmp/x");
    assert.equal(flags.values.get("pre-vote"), "true");
    assert.equal(flags.values.get("max-txn-ops"), "64");
    assert.equal(flags.values.get("max-request-bytes"), "1572864");
  });

  test("ETCD_* variables fill flags; a command-line flag wins", () => {
    const flags = parseFlags(["--name", "from-flag"], { ETCD_NAME: "from-env", ETCD_MAX_TXN_OPS: "7", ETCD_NOPE: "1" });
    assert.equal(flags.values.get("name"), "from-flag");
    assert.equal(flags.values.get("max-txn-ops"), "7");
    assert.ok(flags.warnings.some((warning) => warning.includes("unrecognized environment variable ETCD_NOPE=1")));
  });

  test("unknown flags and bad values are refused with etcd's wording", () => {
    assert.throws(() => parseFlags(["--foo"], {}), new FlagError("flag provided but not defined: -foo"));
    assert.throws(() => parseFlags(["--max-txn-ops", "many"], {}), /invalid value "many" for flag -max-txn-ops/);
    assert.throws(() => parseFlags(["--name"], {}), /flag needs an argument: -name/);
  });

  test("flags of features not built yet are accepted with a warning", () => {
    const flags = parseFlags(["--enable-v2", "--auto-compaction-retention", "1h"], {});
    assert.ok(flags.warnings.some((warning) => warning.includes("--enable-v2")));
    assert.ok(flags.warnings.some((warning) => warning.includes("--auto-compaction-retention")));
  });

  test("defaults: data dir from the name, etcd's limits", () => {
    const config = serverConfigFromFlags(parseFlags([], {}));
    assert.equal(config.dataDir, "default.edgetcd");
    assert.equal(config.maxTxnOps, 128);
    assert.equal(config.maxRequestBytes, 1572864);
    assert.equal(config.quotaBackendBytes, 2 * 1024 ** 3);
    assert.deepEqual(config.listenClientUrls.map(String), ["http://localhost:2379/"]);
  });

  test("durations in Go syntax", () => {
    assert.equal(parseDurationMs("100ms"), 100);
    assert.equal(parseDurationMs("1m30s"), 90_000);
    assert.equal(parseDurationMs("2h"), 7_200_000);
    assert.equal(parseDurationMs("soon"), undefined);
  });

  test("the server binary exits 2 on an unknown flag, like etcd", () => {
    const result = spawnSync(`${repoRoot}bin/edgetcd`, ["--no-such-flag"], {
      env: { ...process.env, EDGETCD_RUNTIME: testRuntimeName() },
      encoding: "utf8",
    });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /flag provided but not defined: -no-such-flag/);
  });
});
