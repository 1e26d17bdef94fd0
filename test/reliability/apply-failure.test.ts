// Bugs are fatal (issue 19): an error in apply that is not one of etcd's
// operating errors stops the member, as etcd panics, instead of answering the
// client and going on. The entry does not count as applied: the backend's open
// batch is rolled back, and a restart applies the entry again from the WAL, so
// nothing committed is lost and nothing is applied twice.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { PutRequestSchema, RangeRequestSchema, TxnRequestSchema } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import type { Logger, Runtime, SqliteDriver } from "../../src/ports.ts";
import { parseFlags } from "../../src/cli/flags.ts";
import { serverConfigFromFlags } from "../../src/cli/server-config.ts";
import { startServer } from "../../src/server/bootstrap.ts";
import { testRuntime } from "../support/runtime.ts";
import { tempDir } from "../support/processes.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string) => encoder.encode(text);

/** A driver whose kv inserts throw a plain Error (no etcd error) for the value "boom": a bug met in apply. */
function boomOnKvInsert(inner: SqliteDriver): SqliteDriver {
  return {
    ...inner,
    open(path) {
      const db = inner.open(path);
      return {
        exec: (sql) => db.exec(sql),
        close: () => db.close(),
        prepare(sql) {
          const statement = db.prepare(sql);
          if (!sql.startsWith("INSERT OR REPLACE INTO kv")) return statement;
          return {
            get: (...params) => statement.get(...params),
            all: (...params) => statement.all(...params),
            run(...params) {
              const value = params[3];
              if (value instanceof Uint8Array && decoder.decode(value) === "boom") throw new Error("injected: kv insert failed");
              return statement.run(...params);
            },
          };
        },
      };
    },
  };
}

const lines: string[] = [];
const logger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: (message, fields) => void lines.push(`${message} ${JSON.stringify(fields)}`),
};

test("an unexpected error in apply stops the member; the entry is applied again at restart, nothing lost or doubled", async () => {
  const runtime: Runtime = await testRuntime();
  const faulty: Runtime = { ...runtime, sqlite: boomOnKvInsert(runtime.sqlite) };
  const config = serverConfigFromFlags(parseFlags([`--data-dir=${join(tempDir("edgetcd-apply-failure"), "data")}`, "--name=a"], {}));

  const server = await startServer(faulty, config, logger);
  const halts: Array<{ reason: string; exitCode: number }> = [];
  server.onHalt = (reason, exitCode) => halts.push({ reason, exitCode });
  try {
    await server.published;
    const first = await server.put(create(PutRequestSchema, { key: bytes("a"), value: bytes("1") }));
    // A txn that writes "b" then "c": its second write meets the bug, after a change.
    const txn = create(TxnRequestSchema, {
      success: [
        { request: { case: "requestPut", value: create(PutRequestSchema, { key: bytes("b"), value: bytes("2") }) } },
        { request: { case: "requestPut", value: create(PutRequestSchema, { key: bytes("c"), value: bytes("boom") }) } },
      ],
    });
    const outcome = await server.txn(txn).then(
      () => "acknowledged",
      (error: unknown) => String(error),
    );
    assert.doesNotMatch(outcome, /acknowledged/);
    assert.equal(halts.length, 1, JSON.stringify(halts));
    assert.equal(halts[0]?.exitCode, 1);
    assert.match(halts[0]?.reason ?? "", /^apply failed: entry \d+: assertion failed: a write transaction threw after 1 change\(s\), unpublished: injected: kv insert failed/);
    assert.ok(server.failed);
    assert.ok(lines.some((line) => line.startsWith("apply failed; exiting")), lines.join("\n"));
    await assert.rejects(server.put(create(PutRequestSchema, { key: bytes("d"), value: bytes("4") })), /server stopped/);
    assert.ok(Number(first.header?.revision) > 0);
  } finally {
    await server.stop();
  }

  // The same bug at restart: the entry is applied again and stops it again (etcd's panic loop), nothing half-done.
  const again = await startServer(faulty, config, logger);
  const haltsAgain: string[] = [];
  again.onHalt = (reason) => haltsAgain.push(reason);
  try {
    for (let i = 0; i < 100 && haltsAgain.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(haltsAgain.length, 1);
    assert.match(haltsAgain[0] ?? "", /^apply failed/);
  } finally {
    await again.stop();
  }

  // Without the bug, the committed txn is applied whole, once: "a" at its revision, then "b" and "c" together.
  const healthy = await startServer(runtime, config, logger);
  try {
    await healthy.published;
    const range = await healthy.range(create(RangeRequestSchema, { key: bytes("a"), rangeEnd: bytes("z") }));
    const found = Object.fromEntries(range.kvs.map((kv) => [decoder.decode(kv.key), { value: decoder.decode(kv.value), revision: Number(kv.modRevision) }]));
    assert.deepEqual(Object.keys(found).sort(), ["a", "b", "c"]);
    assert.equal(found.a?.value, "1");
    assert.equal(found.b?.revision, found.c?.revision, "one txn, one revision");
    assert.equal(found.b?.revision, (found.a?.revision ?? 0) + 1, "applied once");
    assert.equal(found.c?.value, "boom");
  } finally {
    await healthy.stop();
  }
});

test("a broken invariant in the Raft core stops the member instead of failing one call", async () => {
  const runtime: Runtime = await testRuntime();
  const config = serverConfigFromFlags(parseFlags([`--data-dir=${join(tempDir("edgetcd-raft-failure"), "data")}`, "--name=a"], {}));
  lines.length = 0;
  const server = await startServer(runtime, config, logger);
  const halts: Array<{ reason: string; exitCode: number }> = [];
  server.onHalt = (reason, exitCode) => halts.push({ reason, exitCode });
  try {
    await server.published;
    await server.put(create(PutRequestSchema, { key: bytes("a"), value: bytes("1") }));
    // The core throws only on a broken invariant, which no input can reach
    // (network-message.ts): so the bug is planted in its propose.
    const core = (server as unknown as { log: { node: { propose: (data: Uint8Array) => void } } }).log.node;
    core.propose = () => {
      throw new Error("injected: invariant broken");
    };
    await assert.rejects(server.put(create(PutRequestSchema, { key: bytes("b"), value: bytes("2") })), /server stopped/);
    assert.equal(halts.length, 1, JSON.stringify(halts));
    assert.equal(halts[0]?.exitCode, 1);
    assert.equal(halts[0]?.reason, "raft: injected: invariant broken");
    assert.ok(lines.some((line) => line.startsWith("raft failed; exiting")), lines.join("\n"));
    await assert.rejects(server.range(create(RangeRequestSchema, { key: bytes("a") })), /server stopped/);
  } finally {
    await server.stop();
  }
});
