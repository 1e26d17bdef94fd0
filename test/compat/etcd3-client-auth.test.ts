// The etcd3 npm client's own auth and roles tests (we did not write them), run
// over client TLS against a real etcd 3.4 and against edgetcd (issue 13). A
// case failing against both is the client's or the test's; against edgetcd
// only, it is ours.
//
// Ported from github.com/microsoft/etcd3 at tag v1.1.2, commit
// a974833ddcc5648cc0a24fcf6854657fdf7a4d5b (the installed devDependency):
// - src/test/roles.test.ts: every case ('roles and auth': management, users,
//   password auth), same steps, names and assertions;
// - src/test/watch.test.ts: the one auth case, 'watch()' > 'emits an error if
//   a watcher is cancelled upon creation (#114)' > 'is fixed' (its KV/watch
//   cases are out of scope);
// - src/test/util.ts: the harness (getOptions, expectReject,
//   createTestClientAndKeys, tearDownTestClient, setupAuth, removeAuth).
// Translated from mocha/chai to node:test + node:assert. Deviations: chai's
// containSubset is the small `containsSubset` below (chai-subset's rules);
// the #114 case closes its authed client, which upstream leaves open; the
// harness's TLS proxy and ConnectionPool.deterministicOrder (both only matter
// for several hosts or network faults) are left out.
//
// Upstream's CI runs etcd with https client URLs and a server certificate,
// the client trusting its CA. Here both servers use etcd's own fixture
// certificates (server.crt names 127.0.0.1 and localhost), also with
// --trusted-ca-file, so the client presents a certificate too (getOptions'
// credentials gain privateKey and certChain), and the lowest bcrypt cost, so
// the many users created stay cheap.
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  EtcdRoleExistsError,
  EtcdRoleNotFoundError,
  EtcdRoleNotGrantedError,
  EtcdUserExistsError,
  EtcdUserNotFoundError,
  GRPCDeadlineExceededError,
  type IOptions,
  type Namespace,
  type Role,
} from "etcd3";
import { isBun } from "../support/runtime.ts";
import { freePort, startEdgetcd, startEtcd, type RunningServer, type StartOptions } from "../support/processes.ts";

// Upstream's tests import etcd3's own dependencies, grpc-js (for Metadata)
// and cockatiel (for NoopPolicy). They are not ours to declare: they are
// loaded from where etcd3 resolves them, so the Metadata class is the very one
// the client reads.
const requireFromEtcd3 = createRequire(createRequire(import.meta.url).resolve("etcd3"));
const grpc = requireFromEtcd3("@grpc/grpc-js") as typeof import("@grpc/grpc-js");
const { NoopPolicy } = requireFromEtcd3("cockatiel") as typeof import("cockatiel");

const etcdFixtures = "/usr/share/gocode/src/go.etcd.io/etcd/integration/fixtures";
const rootCertificate = readFileSync(join(etcdFixtures, "ca.crt"));
// --trusted-ca-file makes etcd 3.4 demand a client certificate (pkg/transport's
// TLSInfo.ServerConfig sets RequireAndVerifyClientCert for a CA file even
// without --client-cert-auth; edgetcd does the same),
// so the client presents one. It has no CommonName: it authenticates the TLS
// session only, never a user, so the auth cases still depend on passwords alone.
const clientCertificate = readFileSync(join(etcdFixtures, "client-nocn.crt"));
const clientKey = readFileSync(join(etcdFixtures, "client-nocn.key.insecure"));

/**
 * The host the client dials. On Bun only, it is named "localhost" rather than
 * 127.0.0.1: grpc-js sends the host as the TLS ServerName, and Bun's
 * tls.connect refuses an IP address there ("Setting the TLS ServerName to an
 * IP address is not permitted") before any byte reaches a server. grpc-js's
 * grpc.ssl_target_name_override cannot help: etcd3's Authenticator dials its
 * Authenticate call without the client's grpcOptions. server.crt names
 * localhost as well. On Node the host stays upstream's (an IP address).
 */
const clientHost = (url: string): string => (isBun ? url.replace("//127.0.0.1:", "//localhost:") : url);

/** Upstream's mocha timeout is 10 s per case; this leaves room on a loaded 2-core machine. */
const caseTimeoutMs = 30_000;

async function startOverTls(start: (options: StartOptions) => Promise<RunningServer>): Promise<{ server: RunningServer; url: string }> {
  const clientPort = await freePort();
  const url = `https://127.0.0.1:${clientPort}`;
  // startProcess puts http client URLs first; the later flags win on both servers.
  const server = await start({
    clientPort,
    extraArgs: [
      "--listen-client-urls", url,
      "--advertise-client-urls", url,
      "--cert-file", join(etcdFixtures, "server.crt"),
      "--key-file", join(etcdFixtures, "server.key.insecure"),
      "--trusted-ca-file", join(etcdFixtures, "ca.crt"),
      "--bcrypt-cost", "4",
    ],
  });
  return { server, url };
}

// ---- upstream src/test/util.ts, against one server ----

function harness(url: () => string) {
  /** Returns etcd options to use for connections. */
  function getOptions(defaults: Partial<IOptions> = {}): IOptions {
    return {
      hosts: clientHost(url()),
      credentials: { rootCertificate, privateKey: clientKey, certChain: clientCertificate },
      faultHandling: {
        global: new NoopPolicy(),
        host: () => new NoopPolicy(),
      },
      ...defaults,
    };
  }

  /** Creates an etcd client with the default options and seeds some keys. */
  async function createTestClientAndKeys(): Promise<Etcd3> {
    const client = new Etcd3(getOptions());
    await createTestKeys(client);
    return client;
  }

  async function createTestKeys(client: Namespace): Promise<void> {
    await Promise.all([
      client.put("foo1").value("bar1"),
      client.put("foo2").value("bar2"),
      client.put("foo3").value('{"value":"bar3"}'),
      client.put("baz").value("bar5"),
    ]);
  }

  /** Destroys the etcd client and wipes all keys. */
  async function tearDownTestClient(client: Etcd3 | undefined): Promise<void> {
    await client?.delete().all();
    client?.close();
  }

  /** Sets up authentication for the server. */
  async function setupAuth(client: Etcd3): Promise<void> {
    await wipeAll(client.getUsers());
    await wipeAll(client.getRoles());

    // We need to set up a root user and root role first, otherwise etcd
    // will yell at us.
    const rootUser = await client.user("root").create("password");
    await rootUser.addRole("root");

    await client.user("connor").create("password");

    const normalRole = await client.role("rw_prefix_f").create();
    await normalRole.grant({
      permission: "Readwrite",
      range: client.range({ prefix: "f" }),
    });
    await normalRole.addUser("connor");
    await client.auth.authEnable();
  }

  /** Removes authentication previously added with `setupAuth`. */
  async function removeAuth(client: Etcd3): Promise<void> {
    const rootClient = new Etcd3(
      getOptions({
        auth: {
          username: "root",
          password: "password",
        },
      }),
    );

    await rootClient.auth.authDisable();
    rootClient.close();

    await wipeAll(client.getUsers());
    await wipeAll(client.getRoles());
  }

  return { getOptions, createTestClientAndKeys, tearDownTestClient, setupAuth, removeAuth };
}

function wipeAll(things: Promise<Array<{ delete(): unknown }>>) {
  return things.then((items) => Promise.all(items.map((item) => item.delete())));
}

/**
 * Rejects unless the promise is rejected with an instance of the given class
 * (upstream's expectReject); the message names what was received instead, so a
 * difference between servers reads from the failure alone.
 */
async function expectReject(promise: Promise<unknown>, expected: new (message: string) => Error): Promise<void> {
  let outcome: unknown;
  try {
    await promise;
    outcome = new Error("expected to reject");
  } catch (error) {
    outcome = error;
  }
  if (outcome instanceof expected) return;
  const detail = outcome as { name?: string; constructor?: { name?: string }; message?: string; code?: unknown };
  assert.fail(
    `expected ${expected.name}, got ${detail?.constructor?.name ?? typeof outcome}: ${detail?.message ?? String(outcome)}` +
      (detail?.code === undefined ? "" : ` (gRPC code ${String(detail.code)})`),
  );
}

/**
 * chai-subset's containSubset: every expected array element matches some
 * actual element; an expected object's own keys match recursively (a Buffer
 * compares by its bytes); anything else by ===.
 */
function containsSubset(actual: unknown, expected: unknown): boolean {
  if (expected === actual) return true;
  if (typeof actual !== typeof expected) return false;
  if (typeof expected !== "object" || expected === null) return expected === actual;
  if (actual === null || actual === undefined) return false;
  if (Array.isArray(expected)) {
    if (typeof (actual as { length?: unknown }).length !== "number") return false;
    const actualItems = Array.prototype.slice.call(actual) as unknown[];
    return expected.every((expectedItem) => actualItems.some((actualItem) => containsSubset(actualItem, expectedItem)));
  }
  return Object.keys(expected).every((key) => {
    const expectedValue = (expected as Record<string, unknown>)[key];
    const actualValue = (actual as Record<string, unknown>)[key];
    if (typeof expectedValue === "object" && expectedValue !== null && actualValue !== null) return containsSubset(actualValue, expectedValue);
    return actualValue === expectedValue;
  });
}

function assertContainsSubset(actual: unknown, expected: unknown): void {
  assert.ok(containsSubset(actual, expected), `expected ${JSON.stringify(actual)} to contain subset ${JSON.stringify(expected)}`);
}

// ---- upstream src/test/roles.test.ts ----

function rolesAndAuth(url: () => string): void {
  const { getOptions, createTestClientAndKeys, tearDownTestClient, setupAuth, removeAuth } = harness(url);

  describe("roles and auth", () => {
    let client: Etcd3;

    beforeEach(async () => {
      client = await createTestClientAndKeys();
    });
    afterEach(async () => {
      await tearDownTestClient(client);
    });

    describe("management", () => {
      afterEach(async () => {
        await wipeAll(client.getRoles());
      });

      const expectRoles = async (expected: string[]) => {
        const list = await client.getRoles();
        assert.deepEqual(
          list.map((r) => r.name),
          expected,
        );
      };

      test("create and deletes", { timeout: caseTimeoutMs }, async () => {
        const fooRole = await client.role("foo").create();
        await expectRoles(["foo"]);
        await fooRole.delete();
        await expectRoles([]);
      });

      test("throws on existing roles", { timeout: caseTimeoutMs }, async () => {
        await client.role("foo").create();
        await expectReject(client.role("foo").create(), EtcdRoleExistsError);
      });

      test("throws on deleting a non-existent role", { timeout: caseTimeoutMs }, async () => {
        await expectReject(client.role("foo").delete(), EtcdRoleNotFoundError);
      });

      test("throws on granting permission to a non-existent role", { timeout: caseTimeoutMs }, async () => {
        await expectReject(
          client.role("foo").grant({
            permission: "Read",
            range: client.range({ prefix: "111" }),
          }),
          EtcdRoleNotFoundError,
        );
      });

      test("round trips permission grants", { timeout: caseTimeoutMs }, async () => {
        const fooRole = await client.role("foo").create();
        await fooRole.grant({
          permission: "Read",
          range: client.range({ prefix: "111" }),
        });

        const perms = await fooRole.permissions();
        assertContainsSubset(perms, [
          {
            permission: "Read",
            range: client.range({ prefix: "111" }),
          },
        ]);

        await fooRole.revoke(perms[0]!);
        assert.equal((await fooRole.permissions()).length, 0);
      });
    });

    describe("users", () => {
      let fooRole: Role;
      beforeEach(async () => {
        fooRole = client.role("foo");
        await fooRole.create();
      });

      afterEach(async () => {
        await fooRole.delete();
        await wipeAll(client.getUsers());
      });

      test("creates users", { timeout: caseTimeoutMs }, async () => {
        assert.equal((await client.getUsers()).length, 0);
        await client.user("connor").create("password");
        assertContainsSubset(await client.getUsers(), [{ name: "connor" }]);
      });

      test("throws on existing users", { timeout: caseTimeoutMs }, async () => {
        await client.user("connor").create("password");
        await expectReject(client.user("connor").create("password"), EtcdUserExistsError);
      });

      test("throws on regranting the same role multiple times", { timeout: caseTimeoutMs }, async () => {
        const user = await client.user("connor").create("password");
        await expectReject(user.removeRole(fooRole), EtcdRoleNotGrantedError);
      });

      test("throws on granting a non-existent role", { timeout: caseTimeoutMs }, async () => {
        const user = await client.user("connor").create("password");
        await expectReject(user.addRole("wut"), EtcdRoleNotFoundError);
      });

      test("throws on deleting a non-existent user", { timeout: caseTimeoutMs }, async () => {
        await expectReject(client.user("connor").delete(), EtcdUserNotFoundError);
      });

      test("round trips roles", { timeout: caseTimeoutMs }, async () => {
        const user = await client.user("connor").create("password");
        await user.addRole(fooRole);
        assertContainsSubset(await user.roles(), [{ name: "foo" }]);
        await user.removeRole(fooRole);
        assert.equal((await user.roles()).length, 0);
      });
    });

    describe("password auth", () => {
      beforeEach(async () => {
        await setupAuth(client);
      });

      afterEach(async () => {
        await removeAuth(client);
      });

      test("allows authentication using the correct credentials", { timeout: caseTimeoutMs }, async () => {
        const authedClient = new Etcd3(
          getOptions({
            auth: {
              username: "connor",
              password: "password",
            },
          }),
        );

        await authedClient.put("foo").value("bar");
        authedClient.close();
      });

      test("applies call options", { timeout: caseTimeoutMs }, async () => {
        const authedClient = new Etcd3(
          getOptions({
            auth: {
              username: "connor",
              password: "password",
              callOptions: { deadline: new Date(0) },
            },
          }),
        );

        // Upstream: expect(...).to.be.rejectedWith(GRPCDeadlineExceededError).
        await expectReject(authedClient.put("foo").value("bar").exec(), GRPCDeadlineExceededError);
        authedClient.close();
      });

      test("rejects modifying a key the client has no access to", { timeout: caseTimeoutMs }, async () => {
        const authedClient = new Etcd3(
          getOptions({
            auth: {
              username: "connor",
              password: "password",
            },
          }),
        );

        await expectReject(authedClient.put("wut").value("bar").exec(), EtcdPermissionDeniedError);

        authedClient.close();
      });

      test("throws when using incorrect credentials", { timeout: caseTimeoutMs }, async () => {
        const authedClient = new Etcd3(
          getOptions({
            auth: {
              username: "connor",
              password: "bad password",
            },
          }),
        );

        await expectReject(authedClient.put("foo").value("bar").exec(), EtcdAuthenticationFailedError);

        authedClient.close();
      });

      test("automatically retrieves a new token if the existing one is invalid", { timeout: caseTimeoutMs }, async () => {
        const authedClient = new Etcd3(
          getOptions({
            auth: {
              username: "connor",
              password: "password",
            },
          }),
        );
        // The client's private authenticator, as upstream reaches it.
        const auth = (authedClient as unknown as { pool: { authenticator: { awaitingMetadata: Promise<InstanceType<typeof grpc.Metadata>> } } }).pool.authenticator;
        const badMeta = new grpc.Metadata();
        badMeta.add("token", "lol");
        auth.awaitingMetadata = Promise.resolve(badMeta);

        await authedClient.put("foo").value("bar"); // should retry and not throw
        authedClient.close();

        const updatedMeta: InstanceType<typeof grpc.Metadata> = await auth.awaitingMetadata;
        assert.notDeepEqual(updatedMeta.get("token"), badMeta.get("token"));
      });
    });
  });
}

// ---- upstream src/test/watch.test.ts, its auth case only ----

function watchAuth(url: () => string): void {
  const { getOptions, tearDownTestClient, setupAuth, removeAuth } = harness(url);

  describe("watch()", () => {
    let client: Etcd3;

    beforeEach(async () => {
      client = new Etcd3(getOptions());
    });
    afterEach(async () => {
      await tearDownTestClient(client);
    });

    describe("emits an error if a watcher is cancelled upon creation (#114)", () => {
      beforeEach(() => setupAuth(client));
      afterEach(() => removeAuth(client));

      // Upstream runs it from etcd 3.2.0 on; both servers here are 3.4.
      test("is fixed", { timeout: caseTimeoutMs }, async () => {
        const authedClient = new Etcd3(
          getOptions({
            auth: {
              username: "connor",
              password: "password",
            },
          }),
        );

        try {
          await expectReject(authedClient.watch().key("outside of range").create(), EtcdPermissionDeniedError);
        } finally {
          authedClient.close();
        }
      });
    });
  });
}

describe("the etcd3 npm client's auth and roles tests, over TLS", () => {
  const urls: Record<"etcd" | "edgetcd", string> = { etcd: "", edgetcd: "" };
  const servers: RunningServer[] = [];
  before(async () => {
    const [etcd, edgetcd] = await Promise.all([startOverTls(startEtcd), startOverTls(startEdgetcd)]);
    servers.push(etcd.server, edgetcd.server);
    urls.etcd = etcd.url;
    urls.edgetcd = edgetcd.url;
  }, { timeout: 120_000 });
  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
  });

  for (const kind of ["etcd", "edgetcd"] as const) {
    describe(`against ${kind === "etcd" ? "etcd 3.4" : "edgetcd"}`, () => {
      rolesAndAuth(() => urls[kind]);
      watchAuth(() => urls[kind]);
    });
  }
});
