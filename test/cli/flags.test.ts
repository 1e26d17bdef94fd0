// etcd's command line: Go flag syntax, ETCD_* variables, unknown flags refused,
// each flag implemented, refused or warned about, logging flags validated.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { FlagError, flagDefinitions, flagGroups, parseDurationMs, parseFlags } from "../../src/cli/flags.ts";
import { ConfigError } from "../../src/server/config.ts";
import { serverConfigFromFlags } from "../../src/cli/server-config.ts";
import { repoRoot } from "../support/processes.ts";
import { runtimeName } from "../support/runtime.ts";

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

  test("warned flags are accepted, ignored, and say why", () => {
    const flags = parseFlags(["--enable-pprof", "--auto-compaction-retention", "1h"], {});
    assert.deepEqual(flags.refusals, []);
    assert.ok(flags.warnings.some((warning) => /--enable-pprof is accepted .* and ignored: /.test(warning)));
    assert.ok(flags.warnings.some((warning) => warning.includes("--auto-compaction-retention")));
  });

  test("refused flags stop the start, naming the flag; at their default they ask for nothing", () => {
    for (const argv of [["--config-file", "/etc/etcd.yaml"], ["--discovery", "https://discovery.example/x"], ["--enable-v2"], ["--unsafe-no-fsync"], ["--proxy", "on"], ["--force-new-cluster"], ["--host-whitelist", "example.com"]]) {
      const flags = parseFlags(argv, {});
      const name = (argv[0] as string).slice(2);
      assert.equal(flags.refusals.length, 1, argv.join(" "));
      assert.throws(() => serverConfigFromFlags(flags), (error: Error) => error instanceof ConfigError && error.message.includes(`--${name} is not supported by edgetcd: `));
    }
    const harmless = parseFlags(["--client-cert-auth=false", "--cert-file="], { ETCD_AUTO_TLS: "false" });
    assert.deepEqual(harmless.refusals, []);
    serverConfigFromFlags(harmless);
  });

  test("--auth-token and --bcrypt-cost are checked at start, as etcd does", () => {
    const config = (argv: string[]) => serverConfigFromFlags(parseFlags(argv, {}));
    assert.equal(config([]).authToken, "simple");
    assert.equal(config(["--auth-token", "jwt,pub-key=/k.pub,sign-method=RS256"]).authToken, "jwt,pub-key=/k.pub,sign-method=RS256");
    assert.throws(() => config(["--auth-token", "jwt"]), (error: Error) => error instanceof ConfigError && /--auth-token/.test(error.message));
    assert.throws(() => config(["--auth-token", "kerberos"]), (error: Error) => error instanceof ConfigError && /unknown token type/.test(error.message));
    assert.throws(() => config(["--auth-token", "jwt,pub-key=/k.pub,sign-method=XX256"]), (error: Error) => error instanceof ConfigError && /sign/.test(error.message));
    assert.throws(() => config(["--bcrypt-cost", "3"]), (error: Error) => error instanceof ConfigError && /--bcrypt-cost/.test(error.message));
    assert.equal(config(["--bcrypt-cost", "4"]).bcryptCost, 4);
  });

  test("every flag has a status, a group and a description", () => {
    for (const definition of flagDefinitions) {
      assert.ok(definition.description.length > 10, definition.name);
      assert.ok(flagGroups.includes(definition.group), definition.name);
      if (definition.status.kind !== "implemented") assert.ok(definition.status.reason.length > 10, definition.name);
    }
  });

  test("--log-level, --logger and --log-outputs are validated as etcd 3.4 does", () => {
    const config = (argv: string[]) => serverConfigFromFlags(parseFlags(argv, {}));
    assert.equal(config([]).logLevel, "info");
    assert.deepEqual(config([]).logOutputs, ["stderr"]);
    for (const level of ["debug", "info", "warn", "error", "panic", "fatal"]) assert.equal(config(["--log-level", level]).logLevel, level);
    assert.equal(config(["--debug"]).logLevel, "debug");
    assert.throws(() => config(["--log-level", "debugg"]), /unknown level "debugg" for --log-level/);
    assert.throws(() => config(["--log-level", "INFO"]), /unknown level "INFO"/);
    assert.throws(() => config(["--logger", "bogus"]), /unknown logger option "bogus"/);
    assert.match(config(["--logger", "capnslog"]).startWarnings.join(), /capnslog is deprecated/);
    assert.deepEqual(config(["--logger", "zap"]).startWarnings, []);
    assert.deepEqual(config(["--log-outputs", "stdout,stderr,/var/log/e.log"]).logOutputs, ["stdout", "stderr", "/var/log/e.log"]);
    assert.throws(() => config(["--log-outputs", "default,stdout"]), /multi logoutput for "default" is not supported yet/);
  });

  test("--peer-auto-tls: a self-signed peer certificate for the listen hosts, ignored with etcd's warning when files are given", () => {
    const config = (argv: string[]) => serverConfigFromFlags(parseFlags(argv, {}));
    const https = ["--listen-peer-urls", "https://127.0.0.1:2380,https://[::1]:2380", "--initial-advertise-peer-urls", "https://127.0.0.1:2380"];
    assert.throws(() => config(https), /must be provided for peer url/);
    const auto = config([...https, "--peer-auto-tls"]);
    assert.deepEqual(auto.peerTls?.autoTlsHosts, ["127.0.0.1", "::1"]);
    assert.equal(auto.peerTls?.certFile, undefined);
    assert.equal(auto.peerTls?.clientCertAuth, false);
    assert.deepEqual(auto.startWarnings, []);
    const withCa = config([...https, "--peer-auto-tls", "--peer-trusted-ca-file", "/ca.crt", "--peer-client-cert-auth"]);
    assert.equal(withCa.peerTls?.trustedCaFile, undefined);
    assert.match(withCa.startWarnings.join(), /ignoring --peer-trusted-ca-file, --peer-client-cert-auth with --peer-auto-tls/);
    const files = config([...https, "--peer-auto-tls", "--peer-cert-file", "/m.crt", "--peer-key-file", "/m.key"]);
    assert.equal(files.peerTls?.certFile, "/m.crt");
    assert.equal(files.peerTls?.autoTlsHosts, undefined);
    assert.match(files.startWarnings.join(), /ignoring peer auto TLS since certs given/);
    // Without the flag, plaintext peers stay plaintext.
    assert.equal(config([]).peerTls, undefined);
  });

  test("--wal-dir and --max-wals reach the configuration; counts take no sign, as Go's uint flags", () => {
    const config = serverConfigFromFlags(parseFlags(["--wal-dir", "/disk2/wal", "--max-wals", "0"], {}));
    assert.equal(config.walDir, "/disk2/wal");
    assert.equal(config.maxWals, 0);
    const defaults = serverConfigFromFlags(parseFlags([], {}));
    assert.equal(defaults.walDir, undefined);
    assert.equal(defaults.maxWals, 5);
    assert.throws(() => parseFlags(["--max-wals", "-1"], {}), new FlagError(`invalid value "-1" for flag -max-wals: parse error`));
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
      env: { ...process.env, EDGETCD_RUNTIME: runtimeName },
      encoding: "utf8",
    });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /flag provided but not defined: -no-such-flag/);
  });
});
