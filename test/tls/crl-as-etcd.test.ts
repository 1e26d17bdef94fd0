// --client-crl-file as etcd checks it: by serial number only. etcd's own test
// list (integration/fixtures/revoke.crl) expired in 2021; etcd still admits
// every certificate it does not list and refuses the one it does
// (TestCtlV3GetRevokedCRL). OpenSSL's CRL check would refuse everyone.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { etcdctlAsync, freePort, startEdgetcd, startEtcd, type RunningServer, etcdBesideEdgetcd } from "../support/processes.ts";

const fixtures = "/usr/share/gocode/src/go.etcd.io/etcd/integration/fixtures";

async function startWithCrl(start: typeof startEtcd): Promise<RunningServer> {
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  return start({
    clientPort: port,
    extraArgs: [
      "--listen-client-urls", url, "--advertise-client-urls", url,
      "--cert-file", `${fixtures}/server.crt`, "--key-file", `${fixtures}/server.key.insecure`,
      "--trusted-ca-file", `${fixtures}/ca.crt`, "--client-cert-auth", "--client-crl-file", `${fixtures}/revoke.crl`,
    ],
  });
}

const put = (server: RunningServer, name: string) =>
  etcdctlAsync(server.endpoint, ["--cacert", `${fixtures}/ca.crt`, "--cert", `${fixtures}/${name}.crt`, "--key", `${fixtures}/${name}.key.insecure`, "--dial-timeout", "2s", "--command-timeout", "3s", "put", "k", "v"]);

describe("--client-crl-file: revoked serials refused, an expired list still used as etcd does", { skip: existsSync(`${fixtures}/revoke.crl`) ? false : `etcd's test certificates are not installed (${fixtures})` }, () => {
  const servers = etcdBesideEdgetcd({ etcd: () => startWithCrl(startEtcd), edgetcd: () => startWithCrl(startEdgetcd) });

  test("the revoked certificate is refused and a valid one admitted, on both", { timeout: 60_000 }, async () => {
    await Promise.all(
      [servers.etcd, servers.edgetcd].map(async (server) => {
        const [revoked, valid] = await Promise.all([put(server, "server-revoked"), put(server, "server")]);
        assert.notEqual(revoked.status, 0, `${server.kind}: revoked certificate admitted`);
        assert.equal(valid.status, 0, `${server.kind}: ${valid.stderr}`);
        assert.equal(valid.stdout, "OK\n");
      }),
    );
  });
});
