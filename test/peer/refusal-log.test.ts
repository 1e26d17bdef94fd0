// Refused peer requests are logged at most once a second per reason, with the
// count held back: a flood of forged requests is not a flood of log lines.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Logger, PeerIncomingRequest } from "../../src/ports.ts";
import { admitPeerRequest, type PeerAdmission } from "../../src/peer/admission.ts";
import { peerRequestHeaders } from "../../src/peer/headers.ts";
import { LogLimiter } from "../../src/log-limiter.ts";

function request(from: number, to = 1): PeerIncomingRequest & { status?: number } {
  const headers: Record<string, string> = peerRequestHeaders(from, to, 0xabcn);
  const answered: PeerIncomingRequest & { status?: number } = {
    method: "POST",
    path: "/raft/stream/message",
    header: (name) => headers[name],
    body: (async function* () {})(),
    respond: (status) => {
      answered.status = status;
    },
    end() {},
    abort() {},
  };
  return answered;
}

test("a flood of refused requests logs one line per reason per second, with the count held back", () => {
  let nowMs = 0;
  const lines: Array<{ message: string; fields: Record<string, unknown> }> = [];
  const logger: Logger = { debug() {}, info() {}, error() {}, warn: (message, fields) => lines.push({ message, fields: fields ?? {} }) };
  const admission: PeerAdmission = {
    localId: 1,
    clusterId: 0xabcn,
    membershipOf: (id) => (id === 3 ? "removed" : "unknown"),
    logger,
    refusalLog: new LogLimiter(() => nowMs),
  };
  for (let i = 0; i < 10_000; i++) {
    const unknown = request(1000 + i);
    assert.equal(admitPeerRequest(unknown, admission), undefined);
    assert.equal(unknown.status, 404);
    const removed = request(3);
    assert.equal(admitPeerRequest(removed, admission), undefined);
    assert.equal(removed.status, 410);
    if (i % 100 === 99) nowMs += 50; // 10,000 of each in 5 s
  }
  const byReason = new Map<string, typeof lines>();
  for (const line of lines) byReason.set(line.message, [...(byReason.get(line.message) ?? []), line]);
  assert.deepEqual([...byReason.keys()].sort(), ["rejected peer request from a removed member", "rejected peer request from a sender that is not a member"]);
  for (const [reason, logged] of byReason) {
    assert.ok(logged.length <= 5, `${reason}: ${logged.length} lines in 5 s`);
    const told = logged.reduce((sum, line) => sum + 1 + Number(line.fields["suppressed-since-last-log"]), 0);
    // Those after the last line (up to a second's worth) are told by the next one.
    assert.ok(told >= 8_000, `the lines account for the refusals (${told})`);
  }
});
