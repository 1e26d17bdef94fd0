// The layer rules of ../shared/design.md, held by a test: src/ never reaches
// the runtime directly, the deterministic cores use no clock, timer or
// randomness of their own, and imports point one way.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;

function sources(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...sources(path));
    else if (name.endsWith(".ts")) found.push(path);
  }
  return found;
}

function importsOf(text: string): string[] {
  return [...text.matchAll(/(?:import|export)\s[^'"]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|^import\s+["']([^"']+)["']/gm)].map(
    (match) => (match[1] ?? match[2] ?? match[3]) as string,
  );
}

const files = sources(join(root, "src")).map((path) => ({ path: relative(root, path), text: readFileSync(path, "utf8") }));

describe("tidy", () => {
  test("nothing in src/ imports node:* or bun:* (runtime/ implements the ports)", () => {
    const offenders = files.filter((file) => importsOf(file.text).some((spec) => /^(node|bun):/.test(spec)));
    assert.deepEqual(offenders.map((file) => file.path), []);
  });

  test("nothing in src/ imports runtime/", () => {
    const offenders = files.filter((file) => importsOf(file.text).some((spec) => spec.includes("runtime/")));
    assert.deepEqual(offenders.map((file) => file.path), []);
  });

  test("the deterministic cores (raft, mvcc) use no clock, timer or randomness of their own", () => {
    const forbidden = /\b(Date\.now|Math\.random|setTimeout|setInterval|setImmediate|performance\.now|queueMicrotask)\b/;
    const offenders = files
      .filter((file) => /^src\/(raft|mvcc)\//.test(file.path))
      .filter((file) => forbidden.test(file.text.replace(/\/\/.*$/gm, "")));
    assert.deepEqual(offenders.map((file) => file.path), []);
  });

  test("the Raft core imports nothing of ours outside src/raft", () => {
    const offenders = files
      .filter((file) => file.path.startsWith("src/raft/"))
      .filter((file) => importsOf(file.text).some((spec) => spec.startsWith(".") && !spec.startsWith("./")));
    assert.deepEqual(offenders.map((file) => file.path), []);
  });

  test("lower layers do not import upper ones (storage and mvcc never reach server or api)", () => {
    const offenders = files
      .filter((file) => /^src\/(storage|mvcc|raft|lease|auth)\//.test(file.path))
      .filter((file) => importsOf(file.text).some((spec) => /\/(server|api|cli)\//.test(spec)));
    assert.deepEqual(offenders.map((file) => file.path), []);
  });

  test("nothing in src/ reaches the network or digests through globals (the PeerNetwork's fetch and the Digest port)", () => {
    const forbidden = /\bglobalThis\.fetch\b|(?<![.\w])fetch\(|\bcrypto\.subtle\b|\bglobalThis\.crypto\b/;
    const offenders = files.filter((file) => forbidden.test(file.text.replace(/\/\/.*$/gm, "")));
    assert.deepEqual(offenders.map((file) => file.path), []);
  });

  test("nothing outside src/cli imports src/cli (commands build the config; the server only reads it)", () => {
    const offenders = files.filter((file) => !file.path.startsWith("src/cli/") && importsOf(file.text).some((spec) => /(^|\/)cli\//.test(spec)));
    assert.deepEqual(offenders.map((file) => file.path), []);
  });

  test("src/api reaches the layers under the node only through it (src/server, its facade.ts)", () => {
    const offenders = files
      .filter((file) => file.path.startsWith("src/api/"))
      .filter((file) => importsOf(file.text).some((spec) => /^\.\.\/(mvcc|lease|auth|storage|raft|peer)\//.test(spec)));
    assert.deepEqual(offenders.map((file) => file.path), []);
  });

  test("no import cycles in src/ (type imports count: a cycle is one design in two files)", () => {
    const graph = new Map(
      files.map((file) => [
        file.path,
        importsOf(file.text)
          .filter((spec) => spec.startsWith("."))
          .map((spec) => relative(root, join(root, dirname(file.path), spec))),
      ]),
    );
    assert.deepEqual(cyclesOf(graph), []);
  });

  test("the production roots reach nothing in runtime/faults/ or runtime/test/ (faults and mutants are the test root's)", () => {
    for (const entry of ["runtime/node/main.ts", "runtime/bun/main.ts", "runtime/deno/main.ts"]) {
      const reached = localImportClosure(entry);
      assert.ok(reached.has("src/cli/edgetcd.ts"), `${entry}'s imports were followed`);
      assert.deepEqual([...reached].filter((path) => /^runtime\/(faults|test)\//.test(path)), [], `reached from ${entry}`);
    }
  });
});

/** Every file of ours `entry` imports, directly or not (relative imports only). */
function localImportClosure(entry: string): Set<string> {
  const seen = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const path = pending.pop() as string;
    if (seen.has(path)) continue;
    seen.add(path);
    for (const spec of importsOf(readFileSync(join(root, path), "utf8"))) {
      if (spec.startsWith(".")) pending.push(relative(root, join(root, dirname(path), spec)));
    }
  }
  return seen;
}

/** The import cycles of `graph` (its strongly connected components of more than one file), by Tarjan's algorithm. */
function cyclesOf(graph: Map<string, string[]>): string[][] {
  let counter = 0;
  const order = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (node: string): void => {
    order.set(node, counter);
    low.set(node, counter);
    counter++;
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (!order.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node) as number, low.get(next) as number));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node) as number, order.get(next) as number));
      }
    }
    if (low.get(node) !== order.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop() as string;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1) cycles.push(component.sort());
  };
  for (const node of graph.keys()) if (!order.has(node)) visit(node);
  return cycles;
}
