// etcd's jwt tokens: --auth-token parsing (etcd 3.4's options and defaults, with
// reasons in the errors), key files in every form etcd reads (PKCS#1, SEC1,
// PKCS#8, a certificate as pub-key), and tokens that only this cluster's key,
// method and clock accept: expired, forged, "alg: none", other-method and
// tampered tokens are refused, never thrown.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT } from "jose";
import { JwtTokens } from "../../src/auth/jwt-tokens.ts";
import { jwtTtlMsDefault, parseAuthTokenOption, parseGoDurationMs, type JwtTokenOptions } from "../../src/auth/token-options.ts";
import { loadJwtKeys } from "../../runtime/node/jwt-keys.ts";
import { selfSignedCertificate } from "../../runtime/node/self-signed-certificate.ts";

const etcdFixtures = "/usr/share/gocode/src/go.etcd.io/etcd/integration/fixtures";
const startWallMs = 1_700_000_000_500;

let dir: string;
const clock = { wallMs: () => startWallMs };

/** Writes `text` to a file of the temporary directory and gives its path. */
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function pems(kind: "rsa" | "ec", privateType: "pkcs1" | "sec1" | "pkcs8", namedCurve = "P-256") {
  const { privateKey, publicKey } = kind === "rsa" ? generateKeyPairSync("rsa", { modulusLength: 2048 }) : generateKeyPairSync("ec", { namedCurve });
  return {
    privatePem: privateKey.export({ type: privateType, format: "pem" }) as string,
    publicPem: publicKey.export({ type: "spki", format: "pem" }) as string,
    privateKey,
  };
}

async function start(spec: string, at = clock): Promise<JwtTokens> {
  const options = parseAuthTokenOption(spec) as JwtTokenOptions;
  assert.equal(options.kind, "jwt");
  const keys = await loadJwtKeys(options);
  return JwtTokens.start({ signMethod: options.signMethod, ...keys, ttlMs: options.ttlMs, clock: at });
}

function decodePart(token: string, index: number): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split(".")[index] as string, "base64url").toString("utf8")) as Record<string, unknown>;
}

let rsa: ReturnType<typeof pems>;
let otherRsa: ReturnType<typeof pems>;
let ecP256: ReturnType<typeof pems>;
let rsaSpec: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "edgetcd-jwt-"));
  rsa = pems("rsa", "pkcs1");
  otherRsa = pems("rsa", "pkcs8");
  ecP256 = pems("ec", "sec1");
  rsaSpec = `jwt,pub-key=${file("rsa.pub", rsa.publicPem)},priv-key=${file("rsa.key", rsa.privatePem)},sign-method=RS256,ttl=10s`;
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe("--auth-token", () => {
  test("simple, and jwt with etcd's defaults", () => {
    assert.deepEqual(parseAuthTokenOption("simple"), { kind: "simple" });
    assert.deepEqual(parseAuthTokenOption("simple,ignored=1"), { kind: "simple" });
    assert.deepEqual(parseAuthTokenOption("jwt,pub-key=/k.pub,priv-key=/k,sign-method=ES384,extra=1"), {
      kind: "jwt",
      signMethod: "ES384",
      publicKeyPath: "/k.pub",
      privateKeyPath: "/k",
      ttlMs: jwtTtlMsDefault,
      unknownOptions: ["extra"],
    });
    assert.equal(jwtTtlMsDefault, 300_000);
    const verifyOnly = parseAuthTokenOption("jwt,pub-key=/k.pub,sign-method=PS512,ttl=1h30m");
    assert.deepEqual(verifyOnly, { kind: "jwt", signMethod: "PS512", publicKeyPath: "/k.pub", ttlMs: 5_400_000, unknownOptions: [] });
  });

  test("bad specs are refused with etcd's message and the reason", () => {
    const cases: [string, RegExp][] = [
      ["", /^auth: invalid auth options: unknown token type ""/],
      ["jwt2,sign-method=RS256", /unknown token type "jwt2"/],
      ["jwt,pub-key", /"pub-key" is not name=value/],
      ["jwt,pub-key=a=b,sign-method=RS256", /"pub-key=a=b" is not name=value/],
      ["jwt,pub-key=/a,pub-key=/b,sign-method=RS256", /"pub-key" is given twice/],
      ["jwt,pub-key=/a", /^auth: invalid auth signature method ""/],
      ["jwt,pub-key=/a,sign-method=XS256", /invalid auth signature method "XS256"/],
      ["jwt,pub-key=/a,sign-method=none", /invalid auth signature method "none"/],
      ["jwt,pub-key=/a,sign-method=EdDSA", /invalid auth signature method "EdDSA"/],
      ["jwt,sign-method=RS256", /^auth: missing key data/],
      ["jwt,pub-key=,priv-key=,sign-method=ES256", /^auth: missing key data/],
      ["jwt,pub-key=/a,sign-method=HS256", /^auth: missing key data.*shared secret/],
      ["jwt,pub-key=/a,sign-method=RS256,ttl=5", /ttl "5" is not a positive duration/],
      ["jwt,pub-key=/a,sign-method=RS256,ttl=0s", /ttl "0s"/],
      ["jwt,pub-key=/a,sign-method=RS256,ttl=-5m", /ttl "-5m"/],
      ["jwt,pub-key=/a,sign-method=RS256,ttl=5 m", /ttl "5 m"/],
    ];
    for (const [spec, message] of cases) assert.throws(() => parseAuthTokenOption(spec), { message }, spec);
  });

  test("Go durations", () => {
    const cases: [string, number | undefined][] = [
      ["5m", 300_000], ["1s", 1000], ["300ms", 300], ["1h30m", 5_400_000], ["1.5h", 5_400_000], ["2h45m3.5s", 9_903_500],
      ["1500us", 1.5], ["1500µs", 1.5], ["2000000ns", 2], [".5s", 500], ["+1s", 1000], ["-1s", -1000], ["0", 0],
      ["", undefined], ["5", undefined], ["s", undefined], [".s", undefined], ["1d", undefined], ["1m 2s", undefined], ["1.2.3s", undefined],
    ];
    for (const [text, ms] of cases) assert.equal(parseGoDurationMs(text), ms, text);
  });
});

describe("jwt tokens", () => {
  test("a token round trips with etcd's header and claims", async () => {
    const tokens = await start(rsaSpec);
    const token = await tokens.sign("alice", 42);
    assert.deepEqual(decodePart(token, 0), { alg: "RS256", typ: "JWT" });
    assert.deepEqual(decodePart(token, 1), { exp: Math.floor((startWallMs + 10_000) / 1000), revision: 42, username: "alice" });
    assert.deepEqual(await tokens.verify(token), { username: "alice", revision: 42 });
  });

  test("every method etcd signs with, from PKCS#1, SEC1 and PKCS#8 keys", async () => {
    const ecP384 = pems("ec", "pkcs8", "P-384");
    const ecP521 = pems("ec", "sec1", "P-521");
    const setups: [string, ReturnType<typeof pems>][] = [
      ["RS384", rsa], ["RS512", otherRsa], ["PS256", rsa], ["PS384", otherRsa], ["PS512", rsa], ["ES256", ecP256], ["ES384", ecP384], ["ES512", ecP521],
    ];
    for (const [method, keys] of setups) {
      const tokens = await start(`jwt,priv-key=${file(`${method}.key`, keys.privatePem)},pub-key=${file(`${method}.pub`, keys.publicPem)},sign-method=${method}`);
      assert.deepEqual(await tokens.verify(await tokens.sign("bob", 7)), { username: "bob", revision: 7 }, method);
    }
  });

  test("HS256: priv-key's bytes are the shared secret", async () => {
    const tokens = await start(`jwt,priv-key=${file("secret", "a shared secret of the cluster")},sign-method=HS256`);
    assert.deepEqual(await tokens.verify(await tokens.sign("carol", 3)), { username: "carol", revision: 3 });
  });

  test("a token is accepted through its exp second and refused after", async () => {
    let nowMs = startWallMs;
    const at = { wallMs: () => nowMs };
    const tokens = await start(rsaSpec.replace("ttl=10s", "ttl=1s"), at);
    const token = await tokens.sign("alice", 1);
    const expSeconds = decodePart(token, 1).exp as number;
    nowMs = expSeconds * 1000 + 999;
    assert.deepEqual(await tokens.verify(token), { username: "alice", revision: 1 });
    nowMs = (expSeconds + 1) * 1000;
    assert.equal(await tokens.verify(token), undefined);
  });

  test("forged, unsigned, other-method, tampered and malformed tokens are refused", async () => {
    const tokens = await start(rsaSpec);
    const other = await start(`jwt,priv-key=${file("other.key", otherRsa.privatePem)},sign-method=RS256`);
    assert.equal(await tokens.verify(await other.sign("alice", 1)), undefined, "signed by another key");

    const header = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const claims = header({ exp: Math.floor(startWallMs / 1000) + 60, revision: 1, username: "root" });
    assert.equal(await tokens.verify(`${header({ alg: "none", typ: "JWT" })}.${claims}.`), undefined, "alg none");

    const rs512 = await new SignJWT({ exp: Math.floor(startWallMs / 1000) + 60, revision: 1, username: "root" }).setProtectedHeader({ alg: "RS512" }).sign(rsa.privateKey);
    assert.equal(await tokens.verify(rs512), undefined, "same key, another method");
    const hmacWithPublicKey = await new SignJWT({ exp: Math.floor(startWallMs / 1000) + 60, revision: 1, username: "root" })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode(rsa.publicPem));
    assert.equal(await tokens.verify(hmacWithPublicKey), undefined, "HS256 keyed with the public key");

    const [head, , signature] = (await tokens.sign("alice", 5)).split(".");
    const tampered = `${head}.${header({ exp: Math.floor(startWallMs / 1000) + 10, revision: 5, username: "root" })}.${signature}`;
    assert.equal(await tokens.verify(tampered), undefined, "tampered payload");

    for (const malformed of ["", "abc", "a.b.c", "...", `${head}.${claims}`]) assert.equal(await tokens.verify(malformed), undefined, malformed);
  });

  test("tokens missing etcd's claims are refused", async () => {
    const tokens = await start(rsaSpec);
    const exp = Math.floor(startWallMs / 1000) + 60;
    const payloads = [{ exp, revision: 1 }, { exp, username: "alice" }, { exp, revision: "1", username: "alice" }, { exp, revision: -1, username: "alice" }, { revision: 1, username: "alice" }, { exp, revision: 1, username: 7 }];
    for (const payload of payloads) {
      const token = await new SignJWT(payload).setProtectedHeader({ alg: "RS256" }).sign(rsa.privateKey);
      assert.equal(await tokens.verify(token), undefined, JSON.stringify(payload));
    }
  });

  test("pub-key only verifies and refuses to sign; priv-key only does both", async () => {
    const full = await start(rsaSpec);
    const verifyOnly = await start(`jwt,pub-key=${join(dir, "rsa.pub")},sign-method=RS256`);
    assert.equal(verifyOnly.verifyOnly, true);
    assert.deepEqual(await verifyOnly.verify(await full.sign("alice", 9)), { username: "alice", revision: 9 });
    await assert.rejects(verifyOnly.sign("alice", 9), { message: "auth: token signing attempted with verify-only key" });
    const privateOnly = await start(`jwt,priv-key=${join(dir, "rsa.key")},sign-method=RS256`);
    assert.deepEqual(await full.verify(await privateOnly.sign("dave", 2)), { username: "dave", revision: 2 });
  });

  test("keys that are not one pair, or do not fit the method, stop the start", async () => {
    await assert.rejects(start(`jwt,pub-key=${join(dir, "rsa.pub")},priv-key=${file("other2.key", otherRsa.privatePem)},sign-method=RS256`), {
      message: "auth: public and private keys don't match",
    });
    await assert.rejects(start(`jwt,priv-key=${join(dir, "rsa.key")},sign-method=ES256`), /rsa key, which cannot be used with sign-method ES256/);
    await assert.rejects(start(`jwt,priv-key=${file("p256.key", ecP256.privatePem)},sign-method=ES384`), /ec prime256v1 key, which cannot be used with sign-method ES384/);
    await assert.rejects(start(`jwt,pub-key=${file("ec.pub", ecP256.publicPem)},sign-method=RS256`), /pub-key is a ec/);
    await assert.rejects(start(`jwt,pub-key=${file("junk.pub", "not a key")},sign-method=RS256`), /pub-key .* is not a PEM key or certificate/);
    await assert.rejects(start(`jwt,priv-key=${join(dir, "missing.key")},sign-method=RS256`), /cannot read --auth-token priv-key/);
  });

  test("a certificate serves as pub-key (a self-signed ECDSA one)", async () => {
    const pair = selfSignedCertificate(["localhost"]);
    const tokens = await start(`jwt,pub-key=${file("self.crt", pair.certificatePem)},priv-key=${file("self.key", pair.keyPem)},sign-method=ES256`);
    assert.deepEqual(await tokens.verify(await tokens.sign("erin", 4)), { username: "erin", revision: 4 });
  });

  test("a self-signed certificate parses whatever its random serial bytes (a leading zero byte once made DER padding OpenSSL refuses)", () => {
    for (const first of [0x00, 0x01, 0x7f, 0x80, 0xff]) {
      for (const second of [0x00, 0x7f, 0x80, 0xff]) {
        const random = new Uint8Array(16).fill(0x11);
        random[0] = first;
        random[1] = second;
        const certificate = new X509Certificate(selfSignedCertificate(["localhost"], Date.now(), random).certificatePem);
        const serial = certificate.serialNumber;
        assert.equal(serial.length, 32, `serial ${serial} from ${first}, ${second}`);
        assert.ok(Number.parseInt(serial.slice(0, 2), 16) >= 0x40 && Number.parseInt(serial.slice(0, 2), 16) <= 0x7f, serial);
      }
    }
  });

  test("etcd's own e2e keys: server.crt as pub-key, server.key.insecure (PKCS#1) as priv-key", { skip: !existsSync(join(etcdFixtures, "server.crt")) && "etcd's fixtures are not on this machine" }, async () => {
    const tokens = await start(`jwt,pub-key=${etcdFixtures}/server.crt,priv-key=${etcdFixtures}/server.key.insecure,sign-method=RS256,ttl=1s`);
    assert.deepEqual(await tokens.verify(await tokens.sign("root", 11)), { username: "root", revision: 11 });
    await assert.rejects(start(`jwt,pub-key=${etcdFixtures}/server2.crt,priv-key=${etcdFixtures}/server.key.insecure,sign-method=RS256`), { message: "auth: public and private keys don't match" });
  });
});
