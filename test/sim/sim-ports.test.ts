// The whole-node simulator's ports on their own: the in-memory PeerNetwork
// (ordered like TCP over a reordering network, broken by one lost packet,
// refused without a listener) and the in-memory file system (a kill keeps what
// was written, a power failure keeps what was synced).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SimClock } from "../../runtime/sim/clock.ts";
import { SimFileSystem } from "../../runtime/sim/file-system.ts";
import { reliableNetwork, SimNetwork } from "../../runtime/sim/network.ts";
import { type PeerPacket, SimPeerHub } from "../../runtime/sim/peer-network.ts";
import { Prng } from "../../runtime/sim/prng.ts";
import type { FileSystem, PeerIncomingRequest } from "../../src/ports.ts";

function hubWith(seed: number, faults = reliableNetwork): { clock: SimClock; network: SimNetwork<PeerPacket>; hub: SimPeerHub } {
  const clock = new SimClock();
  let hub: SimPeerHub | undefined;
  const network = new SimNetwork<PeerPacket>(
    clock,
    new Prng(seed),
    (_from, _to, packet) => hub?.deliver(packet),
    (_from, _to, packet) => hub?.lost(packet),
    faults,
  );
  hub = new SimPeerHub(network);
  return { clock, network, hub };
}

/** Runs the clock until nothing is scheduled, letting promise chains run between events. */
async function drain(clock: SimClock): Promise<void> {
  for (let events = 0; events < 10_000; events++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (!clock.step()) return;
  }
}

async function collect(request: PeerIncomingRequest): Promise<number[]> {
  const bytes: number[] = [];
  for await (const chunk of request.body) bytes.push(...chunk);
  return bytes;
}

describe("SimPeerHub", () => {
  test("a stream's chunks arrive in order and once, though the network delays, reorders and duplicates packets", async () => {
    const { clock, hub } = hubWith(3, { ...reliableNetwork, delayMsMin: 1, delayMsMax: 40, duplicateRate: 0.3 });
    const received: Promise<number[]>[] = [];
    await hub.networkFor(2).listen(new URL("http://b:2380"), (request) => {
      request.respond(200);
      received.push(collect(request));
    });
    const stream = hub.networkFor(1).connect("http://b:2380").request("/raft/stream/message", {});
    for (let i = 0; i < 50; i++) stream.write(new Uint8Array([i]));
    stream.end();
    await drain(clock);
    assert.equal((await stream.response).status, 200);
    assert.equal(received.length, 1);
    assert.deepEqual(await received[0], Array.from({ length: 50 }, (_, i) => i));
  });

  test("one lost packet breaks the connection: both sides see their streams fail", async () => {
    const { clock, network, hub } = hubWith(5);
    let serverFailure: unknown;
    await hub.networkFor(2).listen(new URL("http://b:2380"), (request) => {
      request.respond(200);
      collect(request).catch((error: unknown) => {
        serverFailure = error;
      });
    });
    const session = hub.networkFor(1).connect("http://b:2380");
    const stream = session.request("/raft/stream/message", {});
    stream.write(new Uint8Array([1]));
    await drain(clock);
    assert.equal((await stream.response).status, 200);
    network.cut(1, 2);
    stream.write(new Uint8Array([2]));
    await drain(clock);
    await session.closed;
    await stream.closed;
    assert.match(String(serverFailure), /stream reset/);
    assert.equal(hub.brokenCount, 1);
    assert.equal(hub.openConnectionCount(), 0);
  });

  test("a dial with nobody listening is refused, and a crashed endpoint's listener is gone", async () => {
    const { clock, hub } = hubWith(7);
    const refused = hub.networkFor(1).connect("http://nobody:2380");
    const stream = refused.request("/raft/stream/message", {});
    await drain(clock);
    await refused.closed;
    await assert.rejects(stream.response, /closed before a response/);

    await hub.networkFor(2).listen(new URL("http://b:2380"), (request) => request.end());
    hub.crashEndpoint(2);
    const late = hub.networkFor(1).connect("http://b:2380");
    await drain(clock);
    await late.closed;
  });

  test("fetch reaches a listener's GET handler and brings its body back", async () => {
    const { clock, hub } = hubWith(9);
    await hub.networkFor(2).listen(new URL("http://b:2380"), (request) => {
      request.respond(200, { "x-answer": request.method });
      request.end(new TextEncoder().encode("[1,2]"));
    });
    const answer = hub.fetchFrom(1)("http://b:2380/members");
    await drain(clock);
    const response = await answer;
    assert.equal(response.headers.get("x-answer"), "GET");
    assert.deepEqual(await response.json(), [1, 2]);
  });
});

describe("SimFileSystem", () => {
  const noRealDisk = {} as FileSystem;
  const write = async (fs: SimFileSystem, path: string, text: string, sync: boolean) => {
    const file = await fs.open(path, "append");
    await file.append(new TextEncoder().encode(text));
    if (sync) await file.datasync();
    return file;
  };

  test("a kill keeps every written byte, a power failure only the synced ones; old handles die", async () => {
    const fs = new SimFileSystem(noRealDisk, () => false);
    await fs.mkdirp("/data/wal");
    await write(fs, "/data/wal/a", "synced|", true);
    const handle = await write(fs, "/data/wal/a", "unsynced", false);
    fs.crash("kill");
    assert.equal(new TextDecoder().decode(await fs.readFile("/data/wal/a")), "synced|unsynced");
    await assert.rejects(handle.append(new Uint8Array([1])), /simulated crash/);
    await write(fs, "/data/wal/a", "+more", false);
    fs.crash("powerFailure");
    assert.equal(new TextDecoder().decode(await fs.readFile("/data/wal/a")), "synced|");
    assert.deepEqual(await fs.list("/data"), ["wal"]);
  });

  test("a lock is exclusive until released or until the machine crashes", async () => {
    const fs = new SimFileSystem(noRealDisk, () => false);
    await fs.mkdirp("/data");
    const lock = await fs.lock("/data/lock");
    await assert.rejects(fs.lock("/data/lock"), /held/);
    await lock.release();
    await fs.lock("/data/lock");
    fs.crash("kill");
    await fs.lock("/data/lock");
  });
});
