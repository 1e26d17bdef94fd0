// --client-cert-auth: a call without a token runs as its verified client
// certificate's CommonName, a token wins over the certificate, and the JSON
// gateway ignores the certificate (it would be the server's own in etcd).
// The same etcdctl script and gateway calls on etcd 3.4 and edgetcd, with
// etcd's own test certificates (server.crt names CN example.com).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import * as https from "node:https";
import { freePort, startEdgetcd, startEtcd, type RunningServer, etcdBesideEdgetcd } from "../support/processes.ts";
import { scriptDifferences, step } from "../support/etcdctl-script.ts";

const fixtures = "/usr/share/gocode/src/go.etcd.io/etcd/integration/fixtures";
const tlsFiles = { cert: `${fixtures}/server.crt`, key: `${fixtures}/server.key.insecure`, ca: `${fixtures}/ca.crt` };
const root = "--user root:rootpw";

const script = [
  step("user add root:rootpw"),
  step("user grant-role root root"),
  step("auth enable"),
  // As example.com, who is not a user yet.
  step("put foo bar"),
  step(`${root} user add example.com --interactive=false`, "x\n"),
  step("put foo bar"),
  step(`${root} role add foo-writer`),
  step(`${root} role grant-permission foo-writer readwrite foo`),
  step(`${root} user grant-role example.com foo-writer`),
  step("put foo bar"),
  step("get foo"),
  step("put baz bar"),
  // A token wins over the certificate.
  step(`${root} put baz bar`),
  step(`${root} user revoke-role example.com foo-writer`),
  step("get foo"),
];

async function startWithTls(start: typeof startEtcd): Promise<RunningServer> {
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  return start({
    clientPort: port,
    extraArgs: ["--listen-client-urls", url, "--advertise-client-urls", url, "--cert-file", tlsFiles.cert, "--key-file", tlsFiles.key, "--trusted-ca-file", tlsFiles.ca, "--client-cert-auth", "--bcrypt-cost", "4"],
  });
}

function gatewayPut(server: RunningServer): Promise<{ status: number; body: string; contentType: string | undefined }> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      `https://${server.endpoint}/v3/kv/put`,
      { method: "POST", cert: readFileSync(tlsFiles.cert), key: readFileSync(tlsFiles.key), ca: readFileSync(tlsFiles.ca) },
      (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => (body += chunk.toString()));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body, contentType: response.headers["content-type"] }));
      },
    );
    request.on("error", reject);
    request.end(JSON.stringify({ key: Buffer.from("foo").toString("base64"), value: Buffer.from("gw").toString("base64") }));
  });
}

describe("--client-cert-auth: the certificate's CommonName is the user, as in etcd 3.4", { skip: existsSync(tlsFiles.cert) ? false : `etcd's test certificates are not installed (${fixtures})` }, () => {
  const servers = etcdBesideEdgetcd({ etcd: () => startWithTls(startEtcd), edgetcd: () => startWithTls(startEdgetcd) });

  test("etcdctl with only a client certificate acts as its CommonName", { timeout: 120_000 }, async () => {
    const differences = await scriptDifferences(servers.etcd, servers.edgetcd, script, ["--cacert", tlsFiles.ca, "--cert", tlsFiles.cert, "--key", tlsFiles.key]);
    assert.deepEqual(differences, []);
  });

  test("the gateway refuses a call made with a named certificate (etcd's 400), rather than run it as nobody", async () => {
    const [fromEtcd, fromEdgetcd] = await Promise.all([gatewayPut(servers.etcd), gatewayPut(servers.edgetcd)]);
    assert.equal(fromEtcd.status, 400);
    assert.deepEqual(fromEdgetcd, fromEtcd);
  });
});
