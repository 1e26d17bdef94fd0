// The PasswordHasher port: the worker pool of Node and Bun (whichever runs this
// file) and the simulator's synchronous one answer alike: bcrypt round trips at
// the asked cost, Go-made "$2a$" hashes verify (etcd's stored passwords), a
// malformed hash is a mismatch, not a throw. The pool's own checks: the work runs
// in worker threads while the event loop stays free, the queue has a limit, and
// a worker that dies fails only its job.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { PasswordHasher } from "../../src/ports.ts";
import { WorkerPasswordHasher } from "../../runtime/node/password-hasher.ts";
import { simPasswordHasher } from "../../runtime/sim/password-hasher.ts";
import { simRandom } from "../../runtime/sim/random.ts";

/** Made by golang.org/x/crypto/bcrypt (as etcd stores a password) at cost 4. */
const goHashOfRootSecret = "$2a$04$43bOwMLH7qsy7j7uI5kfxuN2dQo0ZMzKqnjUAzzSCUFaww3I4wjjy";
/** golang.org/x/crypto/bcrypt's own test vector (TestBcryptingIsCorrect): "allmine" at cost 10. */
const goVectorAllmine = "$2a$10$XajjQvNhvvRt5GSeFk1xFeyqRrsxkhBkUiQeg0dt.wU1qD4aFDcga";

const hashers: [string, () => PasswordHasher][] = [
  ["worker pool", () => new WorkerPasswordHasher()],
  ["simulator", () => simPasswordHasher(simRandom(7))],
];

for (const [name, make] of hashers) {
  describe(`password hasher: ${name}`, () => {
    test("a hash verifies its password and no other, and carries the cost", async () => {
      const hasher = make();
      const hash = await hasher.hash("s3cret", 5);
      assert.match(hash, /^\$2a\$05\$[./A-Za-z0-9]{53}$/);
      assert.equal(await hasher.verify("s3cret", hash), true);
      assert.equal(await hasher.verify("s3cret!", hash), false);
      assert.equal(await hasher.verify("", hash), false);
      await hasher.close();
    });

    test("hashes made by Go's bcrypt verify", async () => {
      const hasher = make();
      assert.equal(await hasher.verify("etcd-root-secret", goHashOfRootSecret), true);
      assert.equal(await hasher.verify("etcd-root-secreT", goHashOfRootSecret), false);
      assert.equal(await hasher.verify("allmine", goVectorAllmine), true);
      await hasher.close();
    });

    test("a malformed hash is a mismatch, never a throw", async () => {
      const hasher = make();
      const malformed = ["", "plain", "$2a$10$fooo", "$2a$99$sssssssssssssssssssssshhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh", "$9z$04$43bOwMLH7qsy7j7uI5kfxuN2dQo0ZMzKqnjUAzzSCUFaww3I4wjjy", goHashOfRootSecret.replace("$04$", "$0x$")];
      for (const hash of malformed) assert.equal(await hasher.verify("etcd-root-secret", hash), false, hash);
      await hasher.close();
    });

    test("a cost outside bcrypt's 4..31 is refused", async () => {
      const hasher = make();
      for (const cost of [3, 32, 4.5]) await assert.rejects(hasher.hash("pw", cost), /bcrypt cost/);
      await hasher.close();
    });
  });
}

describe("password hasher: worker pool", () => {
  test("eight hashes at cost 10 run in worker threads while the event loop goes on", async () => {
    const hasher = new WorkerPasswordHasher(2);
    let settled = 0;
    const hashes = Array.from({ length: 8 }, (_, i) => hasher.hash(`password-${i}`, 10).finally(() => settled++));
    // Work of the main thread done while every hash is still out: a pool that
    // hashed on the event loop would have settled them before this ran.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, 0);
    const done = await Promise.all(hashes);
    assert.equal(new Set(done).size, 8);
    assert.deepEqual(hasher.stats, { workersStarted: 2, workerDeaths: 0, jobsDone: 8 });
    assert.equal(await hasher.verify("password-3", done[3] as string), true);
    await hasher.close();
  });

  test("no worker starts before the first password", async () => {
    const hasher = new WorkerPasswordHasher();
    assert.equal(hasher.stats.workersStarted, 0);
    await hasher.close();
  });

  test("past the queue's limit a job is refused with etcd's too many requests", async () => {
    const hasher = new WorkerPasswordHasher(1, 2);
    const running = hasher.hash("a", 8); // taken by the worker at once
    const queued = [hasher.hash("b", 4), hasher.hash("c", 4)];
    await assert.rejects(hasher.hash("d", 4), { message: "etcdserver: too many requests" });
    assert.match(await running, /^\$2a\$08\$/);
    await Promise.all(queued);
    await hasher.close();
  });

  test("a worker that dies fails its job; the next job gets a new worker", async () => {
    const hasher = new WorkerPasswordHasher(1);
    const doomed = assert.rejects(hasher.hash("doomed", 12), /password worker exited/);
    const waiting = hasher.hash("waiting", 4);
    await new Promise((resolve) => setImmediate(resolve));
    await hasher.crashBusyWorkersForTest();
    await doomed;
    assert.match(await waiting, /^\$2a\$04\$/);
    assert.deepEqual(hasher.stats, { workersStarted: 2, workerDeaths: 1, jobsDone: 1 });
    await hasher.close();
  });

  test("close fails the jobs out and a later job starts workers again", async () => {
    const hasher = new WorkerPasswordHasher(1);
    const running = assert.rejects(hasher.hash("x", 12), /closed/);
    const queued = assert.rejects(hasher.hash("y", 4), /closed/);
    await hasher.close();
    await Promise.all([running, queued]);
    assert.equal(await hasher.verify("etcd-root-secret", goHashOfRootSecret), true);
    await hasher.close();
  });
});

test("the simulator's hashes are a function of its seed", async () => {
  const first = await simPasswordHasher(simRandom(42)).hash("pw", 4);
  const second = await simPasswordHasher(simRandom(42)).hash("pw", 4);
  const other = await simPasswordHasher(simRandom(43)).hash("pw", 4);
  assert.equal(first, second);
  assert.notEqual(first, other);
});
