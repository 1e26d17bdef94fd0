// test/run.ts on a fresh machine: what the tests need beside node_modules is
// found missing, installed from Debian's packages when root with apt-get,
// named with the command to run otherwise. Nothing is installed here: the
// runner's dry run looks under an empty root.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { missingPrerequisites, planPrerequisites, prerequisites } from "../prerequisites.ts";
import { repoRoot, tempDir } from "../support/processes.ts";

const allPackages = ["etcd-server", "etcd-client", "chromium", "golang-etcd-server-dev", "util-linux", "python3-etcd3", "python3-etcd3gw", "golang-go", "patroni", "postgresql"];

function dryRun(root: string, asNobody: boolean) {
  return spawnSync(process.execPath, ["--import", "tsx", join(repoRoot, "test/run.ts")], {
    cwd: repoRoot,
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, HOME: "/tmp", EDGETCD_TEST_PREREQS_DRY_RUN: "1", EDGETCD_TEST_PREREQS_ROOT: root },
    ...(asNobody ? { uid: 65534, gid: 65534 } : {}),
  });
}

describe("test prerequisites", () => {
  test("nothing missing: ready", () => {
    assert.deepEqual(planPrerequisites([], { isRoot: false, hasAptGet: false }), { kind: "ready" });
  });

  test("root with apt-get: apt-get update once, then one install of the missing packages", () => {
    const missing = prerequisites.filter((prerequisite) => prerequisite.debianPackage.startsWith("etcd"));
    const plan = planPrerequisites(missing, { isRoot: true, hasAptGet: true });
    assert.equal(plan.kind, "install");
    assert.deepEqual(plan.kind === "install" && plan.commands, [["apt-get", "update"], ["apt-get", "install", "-y", "etcd-server", "etcd-client"]]);
  });

  test("not root: fails, naming each missing file, its package and the command", () => {
    const plan = planPrerequisites(prerequisites, { isRoot: false, hasAptGet: true });
    assert.equal(plan.kind, "fail");
    const message = plan.kind === "fail" ? plan.message : "";
    for (const prerequisite of prerequisites) assert.ok(message.includes(`${prerequisite.path} (Debian package ${prerequisite.debianPackage})`), message);
    assert.ok(message.includes(`sudo apt-get install -y ${allPackages.join(" ")}`), message);
  });

  test("no apt-get: fails and says to use this system's package manager", () => {
    const plan = planPrerequisites(prerequisites.slice(0, 1), { isRoot: true, hasAptGet: false });
    assert.equal(plan.kind, "fail");
    assert.match(plan.kind === "fail" ? plan.message : "", /this system's package manager \(Debian: apt-get install -y etcd-server\)/);
  });

  test("this machine has them all (the rest of the suite depends on it)", () => {
    assert.deepEqual(missingPrerequisites("/"), []);
  });

  test("the runner, under an empty root as root: says it installs them (dry run), stops the packaged etcd after", { skip: process.getuid?.() !== 0 && "not root" }, () => {
    const root = tempDir("fresh-root");
    const result = dryRun(root, false);
    rmSync(root, { recursive: true, force: true });
    assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
    const lines = result.stdout.split("\n");
    assert.match(lines[0] ?? "", /^The tests need etcd 3\.4, etcdctl 3\.4, Chromium, etcd 3\.4's Go sources, unshare \(util-linux\), python-etcd3 \(grpcio\), etcd3gw \(etcd's JSON gateway\), Go, Patroni, PostgreSQL 15: installing from Debian's packages\.$/);
    assert.equal(lines[1], "would run: apt-get update");
    assert.equal(lines[2], `would run: apt-get install -y ${allPackages.join(" ")}`);
    assert.match(lines[3] ?? "", /^would run: sh -c .*systemctl stop etcd.*\/etc\/init\.d\/etcd stop/);
  });

  test("the runner, under an empty root as another user: fails before running anything, naming what to install", { skip: process.getuid?.() !== 0 && "needs root to switch users" }, () => {
    const root = tempDir("fresh-root");
    const result = dryRun(root, true);
    rmSync(root, { recursive: true, force: true });
    assert.equal(result.status, 1, `${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /^The tests need what this machine lacks:/);
    assert.match(result.stdout, /etcd 3\.4: .*\/usr\/bin\/etcd \(Debian package etcd-server\)/);
    assert.doesNotMatch(result.stdout, /would run|===/);
  });

  test("the runner on this machine: all present", () => {
    const result = dryRun("/", false);
    assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
    assert.equal(result.stdout.trim(), "prerequisites: all present");
  });
});
