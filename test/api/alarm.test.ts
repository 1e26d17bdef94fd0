// --quota-backend-bytes and the NOSPACE alarm, beside etcd 3.4 (its e2e
// TestCtlV3Alarm's steps): writes fill the backend until one is refused with
// "database space exceeded", the alarm is up (alarm list, /health false,
// endpoint status errors), further puts fail while deletes still run;
// compaction and defragmentation make room, disarming lets puts in again.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { etcdctlAsync, type RunningServer, etcdBesideEdgetcd } from "../support/processes.ts";

const quotaBytes = 13 * 4096;
const small = "a".repeat(64);
const page = "b".repeat(4096);
/** Puts of a page before the quota must have been reached on either server. */
const fillPutsMax = 200;

async function memberIdOf(server: RunningServer): Promise<string> {
  // From the text: the id is a uint64, past what a JSON number keeps exactly.
  const list = await etcdctlAsync(server.endpoint, ["member", "list", "-w", "json"]);
  return /"ID":(\d+)/.exec(list.stdout)?.[1] ?? "none";
}

async function alarmFlow(server: RunningServer): Promise<string[]> {
  const seen: string[] = [];
  const ctl = async (...args: string[]) => {
    const result = await etcdctlAsync(server.endpoint, args);
    return { ...result, text: `${result.stdout}${result.stderr}` };
  };
  assert.equal((await ctl("put", "1st_test", small)).status, 0);
  let refused = "";
  for (let i = 0; i < fillPutsMax && refused === ""; i++) {
    const put = await ctl("put", "2nd_test", page);
    if (put.status !== 0) refused = put.text;
  }
  assert.match(refused, /etcdserver: mvcc: database space exceeded/);
  const id = await memberIdOf(server);
  seen.push((await ctl("alarm", "list")).stdout.replace(id, "<id>"));
  const health = await fetch(`http://${server.endpoint}/health`);
  seen.push(`${health.status} ${await health.text()}`);
  const status = JSON.parse((await ctl("endpoint", "status", "-w", "json")).stdout) as Array<{ Status: { errors?: string[] } }>;
  seen.push(JSON.stringify(status[0]?.Status.errors ?? []).replace(id, "<id>"));
  seen.push(String((await ctl("put", "3rd_test", small)).text.match(/database space exceeded/)?.[0]));
  seen.push((await ctl("del", "1st_test")).stdout);
  const revision = (JSON.parse((await ctl("get", "2nd_test", "-w", "json")).stdout) as { header: { revision: number } }).header.revision;
  assert.equal((await ctl("compaction", String(revision), "--physical")).status, 0);
  assert.equal((await ctl("defrag")).status, 0);
  seen.push((await ctl("alarm", "disarm")).stdout.replace(id, "<id>"));
  seen.push((await ctl("alarm", "list")).stdout);
  const put = await ctl("put", "4th_test", small);
  seen.push(`${put.status} ${put.stdout}`);
  return seen;
}

describe("--quota-backend-bytes and the NOSPACE alarm, beside etcd 3.4", () => {
  const servers = etcdBesideEdgetcd({ extraArgs: ["--quota-backend-bytes", String(quotaBytes)] });

  test("fill, alarm, refuse, make room, disarm, write again: the same answers", { timeout: 180_000 }, async () => {
    const [want, got] = await Promise.all([alarmFlow(servers.etcd), alarmFlow(servers.edgetcd)]);
    assert.deepEqual(got, want);
  });
});
