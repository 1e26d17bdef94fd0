// A member whose certificate a peer refuses (--peer-cert-allowed-cn or
// --peer-cert-allowed-hostname) hears why, as under etcd 3.4, where Go's
// bad_certificate alert makes the refused member log "remote error: tls: bad
// certificate" (etcd's e2e TestEtcdPeerCNAuth waits for that line). Node
// cannot fail the handshake on those checks, so the refusing side sends an
// HTTP/2 GOAWAY (INADEQUATE_SECURITY, "bad certificate") and nothing else
// (runtime/node/peer-refusal.ts). Checked: the frame reader; both directions
// on the peer network in this process (a server refusing a dialler, a dialler
// refusing a server), with no request reaching a handler either way; and three
// real members, two sharing an allowed CN and one refused by both.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { PeerRequestHandler } from "../../src/ports.ts";
import { nodePeerNetworkWithTls } from "../../runtime/node/peer-network.ts";
import {
  certificateRefusalCode,
  certificateRefusalDebugData,
  holdsCertificateRefusal,
  isCertificateRefusal,
  serverRefusalFrames,
} from "../../runtime/node/peer-refusal.ts";
import type { PeerTlsEvents, PeerTlsMaterial } from "../../runtime/node/peer-tls.ts";
import { encodeGoaway } from "../../runtime/node/h2-frame-guard.ts";
import { sleep } from "../support/cluster.ts";
import { etcdctl, freePort, repoRoot, startEdgetcd, tempDir, type RunningServer } from "../support/processes.ts";
import { runtimeName, runtimeTitle } from "../support/runtime.ts";
import { makeTestPki, type CertFiles, type TestPki } from "./peer-certs.ts";

const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const emptySettings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
const refusalGoaway = encodeGoaway(0, certificateRefusalCode, "bad certificate");

test("the frame reader finds a client's refusal GOAWAY after its preface and other frames, and nothing else", () => {
  assert.ok(holdsCertificateRefusal(Buffer.concat([preface, emptySettings, refusalGoaway])));
  const headers = Buffer.concat([Buffer.from([0, 0, 3, 1, 4, 0, 0, 0, 1]), Buffer.from([0x82, 0x86, 0x84])]);
  assert.ok(holdsCertificateRefusal(Buffer.concat([preface, emptySettings, headers, refusalGoaway])));
  // A refusal needs the exact code and debug data; a cut-off frame is not one yet.
  assert.ok(!holdsCertificateRefusal(Buffer.concat([preface, emptySettings, encodeGoaway(0, 0, "bad certificate")])));
  assert.ok(!holdsCertificateRefusal(Buffer.concat([preface, emptySettings, encodeGoaway(0, certificateRefusalCode, "too_many_pings")])));
  const whole = Buffer.concat([preface, emptySettings, refusalGoaway]);
  assert.ok(!holdsCertificateRefusal(whole.subarray(0, whole.length - 1)));
  // Not HTTP/2 at all.
  assert.ok(!holdsCertificateRefusal(Buffer.concat([Buffer.from("GET / HTTP/1.1\r\n\r\n"), refusalGoaway])));
  assert.ok(!holdsCertificateRefusal(new Uint8Array(0)));
  // A length field larger than the bytes read never reads past them.
  assert.ok(!holdsCertificateRefusal(Buffer.concat([preface, Buffer.from([0xff, 0xff, 0xff, 7, 0, 0, 0, 0, 0])])));
});

test("a server's refusal is its empty SETTINGS then the GOAWAY", () => {
  assert.deepEqual(serverRefusalFrames(), Buffer.concat([emptySettings, refusalGoaway]));
  assert.ok(isCertificateRefusal(certificateRefusalCode, certificateRefusalDebugData));
  assert.ok(!isCertificateRefusal(certificateRefusalCode, undefined));
});

interface Heard {
  refused: string[];
  refusedByPeer: string[];
}

function listening(heard: Heard): PeerTlsEvents {
  return {
    onRefused: (reason) => heard.refused.push(reason),
    onRefusedByPeer: (reason) => heard.refusedByPeer.push(reason),
  };
}

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await sleep(20);
  return condition();
}

describe(`refusals on the peer network on ${runtimeTitle}`, { timeout: 60_000 }, () => {
  let pki: TestPki;
  const material = (own: CertFiles, allowedCn: string | undefined): PeerTlsMaterial => ({
    cert: readFileSync(own.cert),
    key: readFileSync(own.key),
    ca: readFileSync(pki.ca),
    crlFile: undefined,
    requireClientCert: true,
    allowedCn,
    allowedHostname: undefined,
    skipPeerVerification: false,
  });

  before(() => {
    pki = makeTestPki();
  });

  /** One dial from `dialler` to a listener of `server`: what each side heard, and what reached the server's handler. */
  async function dial(server: PeerTlsMaterial, dialler: PeerTlsMaterial) {
    const serverHeard: Heard = { refused: [], refusedByPeer: [] };
    const diallerHeard: Heard = { refused: [], refusedByPeer: [] };
    const served: string[] = [];
    const handler: PeerRequestHandler = (request) => {
      served.push(request.path);
      request.end();
    };
    const listener = await nodePeerNetworkWithTls(server, undefined, listening(serverHeard)).listen(new URL("https://127.0.0.1:0"), handler);
    const session = nodePeerNetworkWithTls(dialler, undefined, listening(diallerHeard)).connect(listener.url.href.replace(/\/$/, ""));
    const stream = session.request("/raft/stream/message", { "x-server-from": "1" });
    const answer = await stream.response.then(
      ({ status }) => `status ${status}`,
      (error: unknown) => `failed: ${error instanceof Error ? error.message : String(error)}`,
    );
    if (answer.startsWith("status")) stream.end();
    session.close();
    await session.closed;
    // The other side's line may come a moment after this side closed.
    await until(() => serverHeard.refused.length + serverHeard.refusedByPeer.length > 0 || served.length > 0, 1000);
    await sleep(100);
    await listener.close();
    return { answer, serverHeard, diallerHeard, served };
  }

  test("a server that refuses the dialler's certificate tells it: the dialler hears Go's 'remote error: tls: bad certificate'", async () => {
    // The dialler takes anyone; the server takes only "member".
    const { answer, serverHeard, diallerHeard, served } = await dial(material(pki.issue("s1", "member"), "member"), material(pki.issue("d1", "outsider"), undefined));
    assert.match(answer, /^failed/);
    assert.deepEqual(served, [], "the refused dialler's request reached the handler");
    assert.deepEqual(diallerHeard.refusedByPeer, ["remote error: tls: bad certificate"]);
    assert.deepEqual(diallerHeard.refused, []);
    assert.equal(serverHeard.refused.length, 1, JSON.stringify(serverHeard));
    assert.match(serverHeard.refused[0] ?? "", /^client certificate authentication failed: CommonName "outsider" is not "member"$/);
  });

  test("a dialler that refuses the server's certificate sends no request and tells the server", async () => {
    const { answer, serverHeard, diallerHeard, served } = await dial(material(pki.issue("s2", "outsider"), undefined), material(pki.issue("d2", "member"), "member"));
    assert.match(answer, /client certificate authentication failed: CommonName "outsider" is not "member"/);
    assert.deepEqual(served, [], "the dialler sent its request to a server it refused");
    assert.equal(diallerHeard.refused.length, 1, JSON.stringify(diallerHeard));
    assert.deepEqual(diallerHeard.refusedByPeer, []);
    assert.deepEqual(serverHeard.refusedByPeer, ["remote error: tls: bad certificate"]);
    assert.deepEqual(serverHeard.refused, []);
  });

  test("when each refuses the other, each says why and hears the other", async () => {
    const { answer, serverHeard, diallerHeard, served } = await dial(material(pki.issue("s3", "member"), "member"), material(pki.issue("d3", "outsider"), "outsider"));
    assert.match(answer, /client certificate authentication failed/);
    assert.deepEqual(served, []);
    assert.equal(diallerHeard.refused.length, 1, JSON.stringify(diallerHeard));
    assert.equal(serverHeard.refused.length, 1, JSON.stringify(serverHeard));
    // The dialler refuses at once, before the server's answer can arrive; the server reads the dialler's refusal.
    assert.deepEqual(serverHeard.refusedByPeer, ["remote error: tls: bad certificate"]);
  });

  test("certificates both sides take: the request is served", async () => {
    const { answer, serverHeard, diallerHeard, served } = await dial(material(pki.issue("s4", "member"), "member"), material(pki.issue("d4", "member"), "member"));
    assert.equal(answer, "status 200");
    assert.deepEqual(served, ["/raft/stream/message"]);
    assert.deepEqual([serverHeard, diallerHeard], [{ refused: [], refusedByPeer: [] }, { refused: [], refusedByPeer: [] }]);
  });
});

/** Whether a log line with message `message` holds `text` (as JSON-escaped in the line). */
function logged(output: string, message: string, text: string): boolean {
  return output.split("\n").some((line) => line.includes(`"msg":${JSON.stringify(message)}`) && line.includes(text));
}

/** An edgetcd member that is not expected to become ready: its output, and a way to stop it. */
function spawnMember(args: string[]): { child: ChildProcess; output: () => string; kill: () => Promise<void> } {
  const child = spawn(join(repoRoot, "bin/edgetcd"), args, {
    cwd: repoRoot,
    env: { ...process.env, EDGETCD_RUNTIME: runtimeName },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    child,
    output: () => output,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

describe(`--peer-cert-allowed-cn: a member refused by the others hears it (etcd's TestEtcdPeerCNAuth) on ${runtimeTitle}`, { timeout: 120_000 }, () => {
  const names = ["m1", "m2", "m3"] as const;
  let members: RunningServer[] = [];
  let refused: ReturnType<typeof spawnMember> | undefined;

  after(async () => {
    await Promise.all(members.map((member) => member.kill()));
    await refused?.kill();
  });

  test("m1 and m2 (CN member) serve; m3 (CN outsider, allowing only outsider) logs 'remote error: tls: bad certificate'", async () => {
    const pki = makeTestPki();
    const root = tempDir("edgetcd-peer-refusal");
    const peerPorts = [await freePort(), await freePort(), await freePort()];
    const clientPorts = [await freePort(), await freePort(), await freePort()];
    const initialCluster = names.map((name, i) => `${name}=https://127.0.0.1:${peerPorts[i]}`).join(",");
    const argsOf = (i: number, commonName: string) => {
      const own = pki.issue(names[i] as string, commonName);
      const peerUrl = `https://127.0.0.1:${peerPorts[i]}`;
      return [
        "--name", names[i] as string,
        "--listen-peer-urls", peerUrl,
        "--initial-advertise-peer-urls", peerUrl,
        "--initial-cluster", initialCluster,
        "--heartbeat-interval", "50",
        "--election-timeout", "500",
        "--peer-cert-file", own.cert,
        "--peer-key-file", own.key,
        "--peer-trusted-ca-file", pki.ca,
        "--peer-client-cert-auth",
        "--peer-cert-allowed-cn", commonName,
      ];
    };
    const clientUrl = (i: number) => `http://127.0.0.1:${clientPorts[i]}`;
    refused = spawnMember([
      "--data-dir", join(root, "m3"),
      "--listen-client-urls", clientUrl(2),
      "--advertise-client-urls", clientUrl(2),
      ...argsOf(2, "outsider"),
    ]);
    members = await Promise.all(
      [0, 1].map((i) => startEdgetcd({ dataDir: join(root, names[i] as string), clientPort: clientPorts[i], peerPort: peerPorts[i], extraArgs: argsOf(i, "member") })),
    );
    const put = etcdctl(`127.0.0.1:${clientPorts[0]}`, ["put", "k", "v"]);
    assert.equal(put.status, 0, put.stderr);
    const got = etcdctl(`127.0.0.1:${clientPorts[1]}`, ["get", "k"]);
    assert.equal(got.stdout, "k\nv\n", got.stderr);

    const m3 = refused;
    assert.ok(await until(() => m3.output().includes("remote error: tls: bad certificate"), 20_000), `m3's output:\n${m3.output().slice(-4000)}`);
    // Each side still says why it refused, in etcd's words; m1 and m2 hear m3's refusal too (m3 dials them with backoff).
    const m3Refuses = 'client certificate authentication failed: CommonName \\"member\\" is not \\"outsider\\"';
    assert.ok(await until(() => logged(m3.output(), "rejected peer connection", m3Refuses), 20_000), m3.output());
    for (const member of members) {
      const heard = () =>
        logged(member.output(), "rejected peer connection", 'client certificate authentication failed: CommonName \\"outsider\\" is not \\"member\\"') &&
        logged(member.output(), "peer rejected this member's certificate", "remote error: tls: bad certificate");
      assert.ok(await until(heard, 20_000), member.output());
    }
  });
});
