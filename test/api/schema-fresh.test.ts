// src/gen is committed so nothing needs buf at run time; this keeps it equal
// to what `npm run gen` produces from proto/ today.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const root = new URL("../..", import.meta.url).pathname;

function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? listFiles(path) : [path];
    });
}

function snapshot(dir: string): Map<string, string> {
  return new Map(listFiles(dir).map((file) => [relative(dir, file), readFileSync(file, "utf8")]));
}

test("src/gen is what buf generates from proto/", async () => {
  const scratch = mkdtempSync(join(tmpdir(), "edgetcd-gen-"));
  try {
    await new Promise<void>((resolve, reject) => {
      execFile(
        join(root, "node_modules/.bin/buf"),
        ["generate", "proto", "--template", "proto/buf.gen.yaml", "-o", scratch],
        { cwd: root, timeout: 60_000 },
        (error, _stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve()),
      );
    });
    const fresh = snapshot(join(scratch, "src/gen"));
    const committed = snapshot(join(root, "src/gen"));
    assert.deepEqual([...committed.keys()], [...fresh.keys()]);
    for (const [file, content] of fresh) {
      assert.ok(committed.get(file) === content, `src/gen/${file} is stale: run npm run gen`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
