// Client TLS (issue 13): https client URLs with etcd's flags, checked with the
// real etcdctl 3.4, node:https and node:http2 clients. Certificates are made
// with the openssl CLI into a temp dir at start: a CA, a server certificate,
// two client certificates, one revoked in a CRL, and a client of another CA.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import * as http2 from "node:http2";
import * as https from "node:https";
import * as net from "node:net";
import * as tls from "node:tls";
import { join } from "node:path";
import { etcdctlAsync, freePort, startEdgetcd, tempDir, type RunningServer } from "../support/processes.ts";

const dir = tempDir("client-tls");
const file = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });

function makeCa(name: string): void {
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "2", "-subj", `/CN=${name}`);
}

function makeLeaf(name: string, ca: string, extensions: string): void {
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
  writeFileSync(file(`${name}.ext`), extensions);
  openssl("x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.crt`, "-days", "2", "-extfile", `${name}.ext`);
}

function makeCertificates(): void {
  makeCa("ca");
  makeCa("other-ca");
  makeLeaf("server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  makeLeaf("client", "ca", "subjectAltName=DNS:client.example\nextendedKeyUsage=clientAuth\n");
  makeLeaf("revoked", "ca", "subjectAltName=DNS:client.example\nextendedKeyUsage=clientAuth\n");
  makeLeaf("stranger", "other-ca", "subjectAltName=DNS:client.example\nextendedKeyUsage=clientAuth\n");
  makeLeaf("elsewhere", "ca", "subjectAltName=DNS:elsewhere.example\nextendedKeyUsage=clientAuth\n");
  writeFileSync(file("index.txt"), "");
  writeFileSync(file("crlnumber"), "1000\n");
  writeFileSync(
    file("ca.cnf"),
    "[ca]\ndefault_ca=own\n[own]\ndatabase=index.txt\ncrlnumber=crlnumber\ndefault_md=sha256\ndefault_crl_days=2\n",
  );
  openssl("ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.crt", "-revoke", "revoked.crt");
  openssl("ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.crt", "-gencrl", "-out", "crl.pem");
}

/** etcdctl's TLS flags for a client holding `name`.crt (none for no certificate). */
const tlsArgs = (name?: string) => ["--cacert", file("ca.crt"), ...(name === undefined ? [] : ["--cert", file(`${name}.crt`), "--key", file(`${name}.key`)])];

async function startHttps(extraArgs: string[], port?: number): Promise<RunningServer & { url: string }> {
  const clientPort = port ?? (await freePort());
  const url = `https://127.0.0.1:${clientPort}`;
  const server = await startEdgetcd({ clientPort, extraArgs: ["--listen-client-urls", url, "--advertise-client-urls", url, ...extraArgs] });
  return { ...server, url };
}

function httpsGet(url: string, path: string, options: https.RequestOptions & tls.ConnectionOptions & { body?: string } = {}): Promise<{ status: number; body: string; alpn: string }> {
  return new Promise((resolve, reject) => {
    const request = https.request(`${url}${path}`, { ca: readFileSync(file("ca.crt")), ALPNProtocols: ["http/1.1"], method: options.body === undefined ? "GET" : "POST", ...options }, (response) => {
      let body = "";
      const alpn = String((response.socket as tls.TLSSocket).alpnProtocol);
      response.on("data", (chunk: Buffer) => (body += chunk.toString()));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body, alpn }));
    });
    request.on("error", reject);
    request.end(options.body);
  });
}

function http2Post(url: string, path: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, { ca: readFileSync(file("ca.crt")) });
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/json" });
    let status = 0;
    let text = "";
    stream.on("response", (headers) => (status = Number(headers[":status"])));
    stream.on("data", (chunk: Buffer) => (text += chunk.toString()));
    stream.on("end", () => {
      session.close();
      resolve({ status, body: text });
    });
    stream.on("error", reject);
    stream.end(body);
  });
}

/** For a call that must fail: etcdctl gives up after 3 s instead of its 10 s (it retries a refused connection until then). */
const refusalExpected = ["--command-timeout=3s"];

describe("client TLS", { timeout: 240_000 }, () => {
  before(() => makeCertificates());

  describe("--cert-file with http and https listen URLs on different ports", () => {
    let server: RunningServer;
    let httpsUrl: string;
    let httpEndpoint: string;
    before(async () => {
      const [httpsPort, httpPort] = [await freePort(), await freePort()];
      httpsUrl = `https://127.0.0.1:${httpsPort}`;
      httpEndpoint = `127.0.0.1:${httpPort}`;
      server = await startEdgetcd({
        clientPort: httpPort,
        extraArgs: [
          "--listen-client-urls", `${httpsUrl},http://${httpEndpoint}`,
          "--advertise-client-urls", httpsUrl,
          "--cert-file", file("server.crt"),
          "--key-file", file("server.key"),
          "--cipher-suites", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        ],
      });
    });
    after(async () => await server?.stop());

    test("etcdctl puts and gets over https with --cacert, and over the http URL", async () => {
      const put = await etcdctlAsync(httpsUrl, [...tlsArgs(), "put", "tls-key", "over-tls"]);
      assert.equal(put.status, 0, put.stderr);
      const get = await etcdctlAsync(httpsUrl, [...tlsArgs(), "get", "tls-key"]);
      assert.equal(get.stdout, "tls-key\nover-tls\n");
      const plain = await etcdctlAsync(`http://${httpEndpoint}`, ["get", "tls-key", "--print-value-only"]);
      assert.equal(plain.stdout, "over-tls\n");
    });

    test("etcdctl without the CA does not trust the server", async () => {
      const result = await etcdctlAsync(httpsUrl, [...refusalExpected, "get", "tls-key"]);
      assert.notEqual(result.status, 0);
    });

    test("/health and the JSON gateway answer over HTTP/1.1 and HTTP/2 (ALPN)", async () => {
      const health = await httpsGet(httpsUrl, "/health");
      assert.equal(health.status, 200);
      assert.equal(health.alpn, "http/1.1");
      assert.match(health.body, /"health":"true"/);
      const range = await httpsGet(httpsUrl, "/v3/kv/range", { body: JSON.stringify({ key: Buffer.from("tls-key").toString("base64") }) });
      assert.equal(range.status, 200);
      assert.match(range.body, new RegExp(Buffer.from("over-tls").toString("base64")));
      const overH2 = await http2Post(httpsUrl, "/v3/kv/range", JSON.stringify({ key: Buffer.from("tls-key").toString("base64") }));
      assert.equal(overH2.status, 200);
      assert.match(overH2.body, new RegExp(Buffer.from("over-tls").toString("base64")));
      const metrics = await httpsGet(httpsUrl, "/metrics");
      assert.equal(metrics.status, 200);
    });

    test("--cipher-suites: a TLS 1.2 client offering only other suites is refused", async () => {
      const error = await new Promise<Error | undefined>((resolve) => {
        const socket = tls.connect({ host: "127.0.0.1", port: Number(new URL(httpsUrl).port), ca: readFileSync(file("ca.crt")), maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES256-GCM-SHA384" });
        socket.once("secureConnect", () => { socket.destroy(); resolve(undefined); });
        socket.once("error", (failure: Error) => resolve(failure));
      });
      assert.ok(error !== undefined, "the handshake should fail");
      const allowed = await new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: "127.0.0.1", port: Number(new URL(httpsUrl).port), ca: readFileSync(file("ca.crt")), maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256" });
        socket.once("secureConnect", () => { resolve(socket.getCipher().standardName); socket.destroy(); });
        socket.once("error", reject);
      });
      assert.equal(allowed, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
    });

    test("a client that never finishes its handshake is cut off (tlsHandshakeTimeoutMs, 10 s)", async () => {
      const startedMs = performance.now();
      const closedAfterMs = await new Promise<number>((resolve) => {
        const socket = net.connect(Number(new URL(httpsUrl).port), "127.0.0.1");
        // The first bytes of a ClientHello record, then silence.
        socket.once("connect", () => socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])));
        socket.on("error", () => {});
        socket.once("close", () => resolve(performance.now() - startedMs));
      });
      assert.ok(closedAfterMs > 8_000 && closedAfterMs < 15_000, `closed after ${Math.round(closedAfterMs)} ms`);
      const still = await etcdctlAsync(httpsUrl, [...tlsArgs(), "get", "tls-key", "--print-value-only"]);
      assert.equal(still.stdout, "over-tls\n");
    });
  });

  describe("--client-cert-auth with --trusted-ca-file and --client-crl-file", () => {
    let server: RunningServer & { url: string };
    before(async () => {
      server = await startHttps([
        "--cert-file", file("server.crt"), "--key-file", file("server.key"),
        "--trusted-ca-file", file("ca.crt"), "--client-cert-auth",
        "--client-crl-file", file("crl.pem"),
      ]);
    });
    after(async () => await server?.stop());

    test("a client with a certificate of the trusted CA puts and gets", async () => {
      const put = await etcdctlAsync(server.url, [...tlsArgs("client"), "put", "k", "v"]);
      assert.equal(put.status, 0, put.stderr);
      const get = await etcdctlAsync(server.url, [...tlsArgs("client"), "get", "k", "--print-value-only"]);
      assert.equal(get.stdout, "v\n");
    });

    for (const [who, name] of [["no certificate", undefined], ["a certificate of another CA", "stranger"], ["a revoked certificate", "revoked"]] as const) {
      test(`a client with ${who} is refused, nothing written, the member serves on`, async () => {
        const put = await etcdctlAsync(server.url, [...refusalExpected, ...tlsArgs(name), "put", "refused", "x"]);
        assert.notEqual(put.status, 0, put.stdout);
        const get = await etcdctlAsync(server.url, [...tlsArgs("client"), "get", "refused", "--print-value-only"]);
        assert.equal(get.status, 0, get.stderr);
        assert.equal(get.stdout, "");
      });
    }

    test("/health over https with a client certificate; without one the handshake fails", async () => {
      const health = await httpsGet(server.url, "/health", { cert: readFileSync(file("client.crt")), key: readFileSync(file("client.key")) });
      assert.equal(health.status, 200);
      await assert.rejects(httpsGet(server.url, "/health"));
    });
  });

  describe("--client-cert-allowed-hostname", () => {
    let server: RunningServer & { url: string };
    before(async () => {
      server = await startHttps([
        "--cert-file", file("server.crt"), "--key-file", file("server.key"),
        "--trusted-ca-file", file("ca.crt"), "--client-cert-auth",
        "--client-cert-allowed-hostname", "client.example",
      ]);
    });
    after(async () => await server?.stop());

    test("a certificate for that hostname is served; another of the same CA is refused", async () => {
      const good = await etcdctlAsync(server.url, [...tlsArgs("client"), "put", "k", "v"]);
      assert.equal(good.status, 0, good.stderr);
      const other = await etcdctlAsync(server.url, [...refusalExpected, ...tlsArgs("elsewhere"), "put", "k", "other"]);
      assert.notEqual(other.status, 0);
    });
  });

  describe("--auto-tls", () => {
    let server: RunningServer & { url: string };
    before(async () => (server = await startHttps(["--auto-tls"])));
    after(async () => await server?.stop());

    // etcdctl 3.4 dials without TLS unless --insecure-transport=false (etcd's own e2e tests pass both).
    const skipVerify = ["--insecure-transport=false", "--insecure-skip-tls-verify"];
    test("serves a self-signed certificate: etcdctl --insecure-skip-tls-verify works, verifying fails", async () => {
      const put = await etcdctlAsync(server.url, [...skipVerify, "put", "auto", "tls"]);
      assert.equal(put.status, 0, put.stderr);
      const get = await etcdctlAsync(server.url, [...skipVerify, "get", "auto", "--print-value-only"]);
      assert.equal(get.stdout, "tls\n");
      const verifying = await etcdctlAsync(server.url, [...refusalExpected, ...tlsArgs(), "get", "auto"]);
      assert.notEqual(verifying.status, 0);
    });
  });

  describe("flags that cannot work are refused at start", () => {
    test("an https URL without --cert-file/--key-file or --auto-tls", async () => {
      await assert.rejects(startHttps([]), /TLS key\/cert \(--cert-file, --key-file\) must be provided for client url https:\/\/127\.0\.0\.1:\d+\/? with HTTPS scheme/);
    });
    test("an unknown or withdrawn cipher suite", async () => {
      await assert.rejects(
        startHttps(["--cert-file", file("server.crt"), "--key-file", file("server.key"), "--cipher-suites", "TLS_RSA_WITH_RC4_128_SHA"]),
        /unexpected TLS cipher suite "TLS_RSA_WITH_RC4_128_SHA"/,
      );
    });
  });
});
