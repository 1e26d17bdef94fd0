// A real browser (headless Debian Chromium, driven by playwright-core) watches
// a prefix through edgetcd.v1.BrowserWatch with connect-web, over Connect and
// over gRPC-Web, from a page served on another origin than edgetcd's: CORS
// preflights and headers are exercised for real. The test writes puts,
// deletes and a transaction meanwhile and checks the page received every
// event, in order, with the revisions the writes were acknowledged at. A page
// from an origin outside --cors must be refused by the browser.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { build } from "esbuild";
import { chromium, type Browser } from "playwright-core";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KV } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { freePort, repoRoot, startEdgetcd, type RunningServer } from "../support/processes.ts";
import type { ReceivedEvent, WatchReport } from "./page.ts";

const chromiumPath = "/usr/bin/chromium";
const bytes = (text: string) => new TextEncoder().encode(text);

type Expected = Omit<ReceivedEvent, "responseIndex" | "responseRevision">;

/** Serves the bundled page on one loopback port. */
async function servePage(port: number, script: string): Promise<Server> {
  const html = `<!doctype html><meta charset="utf-8"><title>watch</title><script type="module" src="/page.js"></script>`;
  const server = createServer((request, response) => {
    const isScript = request.url === "/page.js";
    response.writeHead(200, { "content-type": isScript ? "text/javascript" : "text/html" });
    response.end(isScript ? script : html);
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return server;
}

describe("BrowserWatch in headless Chromium", () => {
  let edgetcd: RunningServer;
  let browser: Browser;
  let allowedPort: number;
  let refusedPort: number;
  const pageServers: Server[] = [];

  before(async () => {
    allowedPort = await freePort();
    refusedPort = await freePort();
    const bundle = await build({
      entryPoints: [`${repoRoot}test/browser/page.ts`],
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      target: "es2022",
    });
    const script = bundle.outputFiles[0]!.text;
    pageServers.push(await servePage(allowedPort, script), await servePage(refusedPort, script));
    edgetcd = await startEdgetcd({ extraArgs: ["--cors", `http://127.0.0.1:${allowedPort}`] });
    browser = await chromium.launch({ executablePath: chromiumPath });
  }, { timeout: 120_000 });

  after(async () => {
    await browser?.close();
    await edgetcd?.stop();
    for (const server of pageServers) server.close();
  });

  for (const transport of ["connect", "grpc-web"] as const) {
    test(`${transport}: every put, delete and txn event arrives in order with its revision`, { timeout: 60_000 }, async () => {
      const kv = createClient(KV, createGrpcTransport({ baseUrl: `http://${edgetcd.endpoint}` }));
      const prefix = `browser/${transport}/`;
      // The model of the prefix, to derive the events etcd semantics require.
      const model = new Map<string, { value: string; createRevision: number; version: number }>();
      const expected: Expected[] = [];
      const applyPut = (key: string, value: string, revision: number) => {
        const previous = model.get(key);
        const next = { value, createRevision: previous?.createRevision ?? revision, version: (previous?.version ?? 0) + 1 };
        model.set(key, next);
        expected.push({ type: "PUT", key, modRevision: revision, ...next, previousValue: previous?.value });
      };
      const applyDelete = (key: string, revision: number) => {
        const previous = model.get(key);
        if (previous === undefined) return;
        model.delete(key);
        expected.push({ type: "DELETE", key, value: "", createRevision: 0, modRevision: revision, version: 0, previousValue: previous.value });
      };
      const put = async (name: string, value: string) => {
        const revision = Number((await kv.put({ key: bytes(prefix + name), value: bytes(value) })).header!.revision);
        applyPut(prefix + name, value, revision);
      };
      const remove = async (name: string) => {
        const revision = Number((await kv.deleteRange({ key: bytes(prefix + name) })).header!.revision);
        applyDelete(prefix + name, revision);
      };

      // One write before the watch starts, so the page also catches up from history.
      await put("a", "0");
      const startRevision = expected[0]!.modRevision;
      const page = await browser.newPage();
      try {
        const query = new URLSearchParams({ edgetcd: `http://${edgetcd.endpoint}`, transport, prefix, startRevision: String(startRevision) });
        await page.goto(`http://127.0.0.1:${allowedPort}/?${query}`);
        await page.waitForFunction(() => {
          const report = (window as unknown as { watchReport?: WatchReport }).watchReport;
          return report !== undefined && (report.created || report.error !== undefined);
        }, undefined, { timeout: 20_000 });

        await put("a", "1");
        await put("b", "1");
        await put("c", "1");
        await remove("b");
        await kv.put({ key: bytes(`outside/${transport}`), value: bytes("not watched") });
        await put("a", "2");
        const txn = await kv.txn({
          compare: [],
          success: [
            { request: { case: "requestPut", value: { key: bytes(`${prefix}d`), value: bytes("1") } } },
            { request: { case: "requestPut", value: { key: bytes(`${prefix}a`), value: bytes("3") } } },
            { request: { case: "requestDeleteRange", value: { key: bytes(`${prefix}c`) } } },
          ],
          failure: [],
        });
        const txnRevision = Number(txn.header!.revision);
        applyPut(`${prefix}d`, "1", txnRevision);
        applyPut(`${prefix}a`, "3", txnRevision);
        applyDelete(`${prefix}c`, txnRevision);
        await remove("a");
        await put("b", "2"); // recreated: version 1 and a new create revision
        for (let i = 0; i < 20; i++) await put(`k${i % 4}`, `v${i}`);

        await page.waitForFunction(
          (count) => {
            const report = (window as unknown as { watchReport: WatchReport }).watchReport;
            return report.events.length >= count || report.error !== undefined;
          },
          expected.length,
          { timeout: 20_000 },
        );
        // Give a duplicate or stray event the chance to show up before comparing.
        await new Promise((resolve) => setTimeout(resolve, 300));
        const report = await page.evaluate(() => (window as unknown as { watchReport: WatchReport }).watchReport);
        assert.equal(report.error, undefined);
        assert.equal(report.created, true);
        const received = report.events.map(({ responseIndex: _index, responseRevision: _revision, ...event }) => event);
        assert.deepEqual(received, expected, "every event once, in order, with its revisions and prev_kv");
        // Atomic: the three events of the transaction came in one response.
        const txnEvents = report.events.filter((event) => event.modRevision === txnRevision);
        assert.equal(txnEvents.length, 3);
        assert.equal(new Set(txnEvents.map((event) => event.responseIndex)).size, 1);
        for (const event of report.events) assert.ok(event.responseRevision >= event.modRevision);
      } finally {
        await page.close();
      }
    });
  }

  test("a page from an origin outside --cors is refused by the browser", { timeout: 60_000 }, async () => {
    const page = await browser.newPage();
    try {
      const query = new URLSearchParams({ edgetcd: `http://${edgetcd.endpoint}`, transport: "connect", prefix: "browser/refused/" });
      await page.goto(`http://127.0.0.1:${refusedPort}/?${query}`);
      await page.waitForFunction(() => {
        const report = (window as unknown as { watchReport?: WatchReport }).watchReport;
        return report !== undefined && (report.created || report.error !== undefined);
      }, undefined, { timeout: 20_000 });
      const report = await page.evaluate(() => (window as unknown as { watchReport: WatchReport }).watchReport);
      assert.equal(report.created, false);
      assert.match(report.error ?? "", /fetch/i);
    } finally {
      await page.close();
    }
  });
});
