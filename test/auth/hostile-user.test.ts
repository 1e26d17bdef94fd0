// A user without rights tries every RPC, and tokens that must not work are
// sent: each is refused with etcd's code and message, nothing is written, and
// the member keeps serving. JWT tokens (--auth-token jwt with keys made here),
// so forged, expired and alg-none tokens can be built.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SignJWT } from "jose";
import {
  Auth,
  Cluster,
  KV,
  Lease,
  Maintenance,
  RequestOpSchema,
  Watch,
  WatchRequestSchema,
  type WatchRequest,
  type WatchResponse,
} from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { Permission_Type } from "../../src/gen/authpb/auth_pb.ts";
import { Lock } from "../../src/gen/v3lockpb/v3lock_pb.ts";
import { startEdgetcd, tempDir, type RunningServer } from "../support/processes.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const dir = tempDir("edgetcd-jwt");
function keyPair(name: string) {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const privatePath = join(dir, `${name}.key`);
  const publicPath = join(dir, `${name}.pub`);
  writeFileSync(privatePath, privateKey.export({ type: "pkcs8", format: "pem" }));
  writeFileSync(publicPath, publicKey.export({ type: "spki", format: "pem" }));
  return { privateKey, privatePath, publicPath };
}
const clusterKey = keyPair("cluster");
const otherKey = keyPair("other");

async function refusal(call: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await call;
  } catch (error) {
    const connect = ConnectError.from(error);
    return { code: connect.code, message: connect.rawMessage };
  }
  assert.fail("the call was not refused");
}

const permissionDenied = { code: Code.PermissionDenied, message: "etcdserver: permission denied" };
const invalidToken = { code: Code.Unauthenticated, message: "etcdserver: invalid auth token" };

describe("auth: a user without rights and tokens that must not work (JWT)", () => {
  let server: RunningServer;
  let transport: ReturnType<typeof createGrpcTransport>;
  const as = (token: string): { headers: Record<string, string> } => ({ headers: { token } });
  let rootToken: string;
  let aliceToken: string;
  let kv: Client<typeof KV>;
  let auth: Client<typeof Auth>;

  before(async () => {
    server = await startEdgetcd({
      extraArgs: ["--bcrypt-cost", "4", "--auth-token", `jwt,pub-key=${clusterKey.publicPath},priv-key=${clusterKey.privatePath},sign-method=RS256,ttl=2s`],
    });
    transport = createGrpcTransport({ baseUrl: `http://${server.endpoint}` });
    kv = createClient(KV, transport);
    auth = createClient(Auth, transport);
    await auth.userAdd({ name: "root", password: "rootpw" });
    await auth.userGrantRole({ user: "root", role: "root" });
    await auth.userAdd({ name: "alice", password: "alicepw" });
    await auth.roleAdd({ name: "a-prefix" });
    await auth.roleGrantPermission({ name: "a-prefix", perm: { key: bytes("/a/"), rangeEnd: bytes("/a0"), permType: Permission_Type.READWRITE } });
    await auth.roleGrantPermission({ name: "a-prefix", perm: { key: bytes("/single"), rangeEnd: new Uint8Array(0), permType: Permission_Type.READ } });
    await auth.userGrantRole({ user: "alice", role: "a-prefix" });
    await kv.put({ key: bytes("/secret"), value: bytes("s") });
    await auth.authEnable({});
    rootToken = (await auth.authenticate({ name: "root", password: "rootpw" })).token;
    aliceToken = (await auth.authenticate({ name: "alice", password: "alicepw" })).token;
  }, { timeout: 60_000 });
  after(async () => {
    await server?.kill();
  });

  test("wrong passwords and unknown users fail like etcd, without a token", async () => {
    const failed = { code: Code.InvalidArgument, message: "etcdserver: authentication failed, invalid user ID or password" };
    assert.deepEqual(await refusal(auth.authenticate({ name: "alice", password: "wrong" })), failed);
    assert.deepEqual(await refusal(auth.authenticate({ name: "mallory", password: "x" })), failed);
    assert.deepEqual(await refusal(kv.range({ key: bytes("/a/x") })), { code: Code.InvalidArgument, message: "etcdserver: user name is empty" });
  });

  test("every KV, lease, lock and admin RPC outside alice's rights is refused, and nothing is written", async () => {
    const alice = as(aliceToken);
    const put = (key: string) => ({ requestPut: { key: bytes(key), value: bytes("x") } });
    const op = (request: ReturnType<typeof put>) => create(RequestOpSchema, { request: { case: "requestPut", value: request.requestPut } });
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ["range outside", () => kv.range({ key: bytes("/secret") }, alice)],
      ["range from a granted single key to the end", () => kv.range({ key: bytes("/single"), rangeEnd: new Uint8Array([0]) }, alice)],
      ["range over the grant's end", () => kv.range({ key: bytes("/a/"), rangeEnd: bytes("/b") }, alice)],
      ["put outside", () => kv.put({ key: bytes("/secret"), value: bytes("x") }, alice)],
      ["put on a read-only key", () => kv.put({ key: bytes("/single"), value: bytes("x") }, alice)],
      ["delete outside", () => kv.deleteRange({ key: bytes("/secret") }, alice)],
      ["delete a prefix wider than the grant", () => kv.deleteRange({ key: bytes("/a"), rangeEnd: bytes("/b") }, alice)],
      ["txn writing outside in the branch that does not run", () => kv.txn({ success: [op(put("/a/ok"))], failure: [op(put("/secret"))] }, alice)],
      ["txn comparing a key outside", () => kv.txn({ compare: [{ key: bytes("/secret"), target: 3, result: 0, targetUnion: { case: "value", value: bytes("s") } }], success: [op(put("/a/ok"))] }, alice)],
      [
        "nested txn writing outside",
        () => kv.txn({ success: [create(RequestOpSchema, { request: { case: "requestTxn", value: { success: [op(put("/secret"))] } as never } })] }, alice),
      ],
      ["user add", () => auth.userAdd({ name: "eve", password: "x" }, alice)],
      ["role list", () => auth.roleList({}, alice)],
      ["auth disable", () => auth.authDisable({}, alice)],
      ["grant itself root", () => auth.userGrantRole({ user: "alice", role: "root" }, alice)],
      ["defragment", () => createClient(Maintenance, transport).defragment({}, alice)],
      ["hash kv", () => createClient(Maintenance, transport).hashKV({}, alice)],
      ["member add", () => createClient(Cluster, transport).memberAdd({ peerURLs: ["http://127.0.0.1:1"] }, alice)],
    ];
    for (const [what, call] of attempts) {
      assert.deepEqual(await refusal(call()), permissionDenied, what);
    }
    // etcd runs Lock as a clientv3 recipe inside the server: the refusal of its
    // put comes back as code Unknown with etcd's text (etcd 3.4's gateway: HTTP
    // 500, code 2, "etcdserver: permission denied").
    assert.deepEqual(await refusal(createClient(Lock, transport).lock({ name: bytes("/secret-lock") }, alice)), { ...permissionDenied, code: Code.Unknown }, "lock outside");
    const snapshot = createClient(Maintenance, transport).snapshot({}, alice);
    assert.deepEqual(await refusal((async () => { for await (const _ of snapshot) void _; })()), permissionDenied, "snapshot");

    // Nothing changed: only /secret and nothing alice tried to write.
    const all = await kv.range({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) }, as(rootToken));
    assert.deepEqual(all.kvs.map((kv) => new TextDecoder().decode(kv.key)), ["/secret"]);
    assert.equal(new TextDecoder().decode(all.kvs[0]?.value), "s");
    assert.deepEqual((await auth.userList({}, as(rootToken))).users, ["alice", "root"]);
  });

  test("a lease whose keys alice may not write cannot be revoked or extended with keys by her", async () => {
    const lease = createClient(Lease, transport);
    const granted = await lease.leaseGrant({ TTL: 60n }, as(rootToken));
    await kv.put({ key: bytes("/secret-leased"), value: bytes("x"), lease: granted.ID }, as(rootToken));
    assert.deepEqual(await refusal(lease.leaseRevoke({ ID: granted.ID }, as(aliceToken))), permissionDenied);
    assert.deepEqual(await refusal(kv.put({ key: bytes("/a/mine"), value: bytes("x"), lease: granted.ID }, as(aliceToken))), permissionDenied);
    assert.equal((await kv.range({ key: bytes("/secret-leased") }, as(rootToken))).count, 1n);
    await lease.leaseRevoke({ ID: granted.ID }, as(rootToken));
  });

  test("watches outside the grant are canceled with etcd's reason, a from-key watch on a single-key grant too", async () => {
    const requests: WatchRequest[] = [];
    let wake: (() => void) | undefined;
    async function* input() {
      for (;;) {
        const next = requests.shift();
        if (next !== undefined) yield next;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    }
    const send = (key: string, rangeEnd?: Uint8Array) => {
      requests.push(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: bytes(key), ...(rangeEnd ? { rangeEnd } : {}) } } }));
      wake?.();
    };
    const abort = new AbortController();
    const stream = createClient(Watch, transport).watch(input(), { ...as(aliceToken), signal: abort.signal })[Symbol.asyncIterator]();
    const next = async () => (await stream.next()).value as WatchResponse;
    send("/secret");
    let response = await next();
    assert.equal(response.created && response.canceled, true);
    assert.equal(response.cancelReason, "etcdserver: permission denied");
    assert.equal(response.watchId, -1n);
    send("/single", new Uint8Array([0]));
    response = await next();
    assert.equal(response.canceled, true, "a from-key watch needs an open-ended grant");
    assert.equal(response.cancelReason, "etcdserver: permission denied");
    send("/a/", bytes("/a0"));
    response = await next();
    assert.equal(response.created, true);
    assert.equal(response.canceled, false);
    await kv.put({ key: bytes("/a/w"), value: bytes("v") }, as(aliceToken));
    response = await next();
    assert.equal(new TextDecoder().decode(response.events[0]?.kv?.key), "/a/w");
    abort.abort();
  });

  test("forged, alg-none, tampered and expired tokens are invalid; the member keeps serving", async () => {
    const now = Math.floor(Date.now() / 1000);
    const forged = await new SignJWT({ username: "root", revision: 1 }).setProtectedHeader({ alg: "RS256" }).setExpirationTime(now + 60).sign(otherKey.privateKey);
    const header = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
    const payload = Buffer.from(JSON.stringify({ username: "root", revision: 1, exp: now + 60 })).toString("base64url");
    const algNone = `${header}.${payload}.`;
    const [h, , s] = aliceToken.split(".");
    const tampered = `${h}.${payload}.${s}`;
    for (const [what, token] of [["forged", forged], ["alg none", algNone], ["tampered", tampered], ["garbage", "x".repeat(100)]] as const) {
      assert.deepEqual(await refusal(kv.range({ key: bytes("/secret") }, as(token))), invalidToken, what);
      assert.deepEqual(await refusal(kv.put({ key: bytes("/secret"), value: bytes("pwned") }, as(token))), invalidToken, what);
    }
    // ttl=2s: a token expires (etcd's clients then log in again).
    const shortLived = (await auth.authenticate({ name: "alice", password: "alicepw" })).token;
    await sleep(3500);
    assert.deepEqual(await refusal(kv.range({ key: bytes("/a/x") }, as(shortLived))), invalidToken, "expired");
    const fresh = (await auth.authenticate({ name: "root", password: "rootpw" })).token;
    assert.equal(new TextDecoder().decode((await kv.range({ key: bytes("/secret") }, as(fresh))).kvs[0]?.value), "s");
  });

  test("a token issued before a change of users or roles is refused as old", async () => {
    const before = (await auth.authenticate({ name: "alice", password: "alicepw" })).token;
    const root = (await auth.authenticate({ name: "root", password: "rootpw" })).token;
    await auth.roleAdd({ name: "another" }, as(root));
    assert.deepEqual(await refusal(kv.range({ key: bytes("/a/x") }, as(before))), { code: Code.InvalidArgument, message: "etcdserver: revision of auth store is old" });
    const after = (await auth.authenticate({ name: "alice", password: "alicepw" })).token;
    assert.equal((await kv.range({ key: bytes("/a/x") }, as(after))).count, 0n);
  });
});
