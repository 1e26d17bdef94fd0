// Row A1 of ../shared/reliability.md: hostile clients on the client port. Each
// attack runs against one real member (on the runtime running the tests) while
// a well-behaved client puts and reads every 100 ms on its own connection. The
// member must survive, its memory stay under a bound and come back, the
// well-behaved client keep succeeding within a p99, and the bad client get
// etcd's answer where etcd gives one. EDGETCD_ABUSE_SCALE (default 0.5 here,
// 1 in `npm run test:abuse`) scales the attacks' sizes and durations.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { clientsOf } from "../support/cluster.ts";
import { startEdgetcd, type RunningServer } from "../support/processes.ts";
import { clientAttacks } from "./client-attacks.ts";
import { formatRow, measureAttack, rssRetainedBytesMax, type AttackRow } from "./measure.ts";
import { describeReport, mebibyte, rssBytes } from "./observe.ts";

const scale = Number(process.env.EDGETCD_ABUSE_SCALE ?? 0.5);
/** The well-behaved client's p99 (put + linearizable get) while an attack runs on the same member. */
const clientLatencyMsP99Max = 2000;
/** How far above its resting memory a member may go during an attack. etcd 3.4 stays within ~80 MB on all of them. */
const rssGrowthBytesMax = 256 * mebibyte;

describe("abuse: hostile clients on the client port", { timeout: 600_000 }, () => {
  let server: RunningServer;
  const rows: AttackRow[] = [];
  before(async () => {
    server = await startEdgetcd();
  });
  after(async () => {
    for (const row of rows) console.log(`abuse row: ${row.target} | ${formatRow(row)}`);
    await server?.kill();
  });

  /** EDGETCD_ABUSE_ONLY: run only the attacks whose names contain one of these comma-separated words. */
  const only = process.env.EDGETCD_ABUSE_ONLY?.split(",");
  for (const attack of clientAttacks.filter((candidate) => only === undefined || only.some((word) => candidate.name.includes(word)))) {
    test(attack.name, async () => {
      const row = await measureAttack(server, attack, scale);
      rows.push(row);
      const where = formatRow(row);
      assert.ok(row.alive, `the member died: ${where}\n${server.output().slice(-3000)}`);
      assert.equal(row.client.failures, 0, `the well-behaved client failed: ${describeReport(row.client)}`);
      assert.ok(row.client.latencyMsP99 <= clientLatencyMsP99Max, `the well-behaved client's p99 is over ${clientLatencyMsP99Max} ms: ${where}`);
      const growthMax = attack.rssGrowthBytesMax ?? rssGrowthBytesMax;
      assert.ok((row.rssPeakMb - row.rssBeforeMb) * mebibyte <= growthMax, `memory grew more than ${growthMax / mebibyte} MB: ${where}`);
      const figures = row.result.figures;
      if (attack.name.startsWith("8 × 50 MB")) {
        // etcd answers 429 (its gRPC receive limit, ResourceExhausted, through grpc-gateway).
        assert.equal(figures.tooLarge, 8, `etcd answers every oversized gateway body 429: ${where}`);
      }
      if (attack.name.startsWith("LeaseKeepAlive")) {
        assert.ok(figures.endedByServerWithError === 1 || figures.answered === figures.sent, `every keep-alive is answered or the server ends the stream with an error: ${where}`);
      }
      if (attack.name.startsWith("CONTINUATION") || attack.name.startsWith("header list")) {
        assert.equal(figures.closedByServer, 1, `a header block that never ends is cut off: ${where}`);
      }
    });
  }

  test("memory does not pile up across the attacks", () => {
    const first = rows[0];
    const last = rssBytes(server.process.pid as number);
    assert.ok(first !== undefined && last !== undefined);
    assert.ok(last - first.rssBeforeMb * mebibyte <= rssRetainedBytesMax, `RSS ${first.rssBeforeMb.toFixed(0)} MB before the first attack, ${(last / mebibyte).toFixed(0)} MB after the last`);
  });

  test("every write the well-behaved clients had acknowledged is there", async () => {
    const kv = clientsOf(server).kv;
    const encoder = new TextEncoder();
    const decoder = new TextDecoder();
    let checked = 0;
    for (const row of rows) {
      for (const [key, value] of row.client.acknowledged) {
        const answer = await kv.range({ key: encoder.encode(key) });
        assert.equal(decoder.decode(answer.kvs[0]?.value), value, `${key} after ${row.attack}`);
        checked++;
      }
    }
    assert.ok(checked > 0);
  });
});
