// npm run build: bundles each runtime's composition root into one JavaScript
// file, so the installed package starts without compiling TypeScript and
// without devDependencies:
//   dist/node/main.js   node dist/node/main.js [etcd flags]
//   dist/bun/main.js    bun dist/bun/main.js [etcd flags]
//   dist/deno/main.js   deno run -A dist/deno/main.js [etcd flags]
//   dist/build-info.json  {"gitCommit": …}, read by runtime/node/build-info.ts
//   dist/test-{node,bun,deno}/main.js  the test roots (runtime/test/,
//                       with faults and mutants): bin/edgetcd runs them with
//                       EDGETCD_ROOT=test; package.json's "files" leaves them out
// Our TypeScript and the pure-JavaScript packages are bundled (one file to
// load: start to ready measured about twice as fast on Node as with every
// package resolved at start); packages with native addons stay imports.
import { execFileSync } from "node:child_process";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { build } from "esbuild";

/**
 * Kept as imports: cbor-extract, the native addon cbor-x loads when it can
 * (cbor-x falls back to its JavaScript decoder without it, as under Deno), and
 * bun:*, Bun's own. Everything else (our TypeScript and the pure-JavaScript
 * packages, cbor-x among them) is bundled, so no runtime resolves a package
 * at start.
 */
const nativeDependencies = ["cbor-extract", "bun:*"];

const root = new URL("..", import.meta.url).pathname;
const outdir = join(root, "dist");

/** The commit the sources came from, or "unknown" outside a git checkout (a build from a tarball). */
function gitCommit(): string {
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "unknown";
  }
}

/**
 * Each file is written beside its place and renamed over it: bin/edgetcd
 * started meanwhile (a test, another checkout user) runs the old file or the
 * new one, never half of one.
 */
function writeAtomically(path: string, contents: Uint8Array | string): void {
  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, contents);
  renameSync(temporary, path);
}

const startedMs = performance.now();
const result = await build({
  absWorkingDir: root,
  entryPoints: {
    "node/main": "runtime/node/main.ts",
    "bun/main": "runtime/bun/main.ts",
    "deno/main": "runtime/deno/main.ts",
    "test-node/main": "runtime/test/node.ts",
    "test-bun/main": "runtime/test/bun.ts",
    "test-deno/main": "runtime/test/deno.ts",
  },
  outdir,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22",
  external: nativeDependencies,
  // CommonJS modules in the bundle call require() for node:* built-ins.
  banner: { js: 'import { createRequire as createRequireForBundle } from "node:module"; const require = createRequireForBundle(import.meta.url);' },
  sourcemap: "linked",
  // Stack traces name src/ files and lines (node --enable-source-maps); the sources are not shipped.
  sourcesContent: false,
  logLevel: "warning",
  metafile: true,
  write: false,
});
writeAtomically(join(outdir, "build-info.json"), `${JSON.stringify({ gitCommit: gitCommit() })}\n`);
// The source maps first, the bundles last: a bundle newer than the sources is what bin/edgetcd runs.
const files = [...result.outputFiles].sort((a, b) => Number(a.path.endsWith(".js")) - Number(b.path.endsWith(".js")));
for (const file of files) writeAtomically(file.path, file.contents);
const outputs = Object.entries(result.metafile.outputs).filter(([path]) => path.endsWith(".js"));
const summary = outputs.map(([path, output]) => `${path} ${(output.bytes / 1024).toFixed(0)} KiB`).join(", ");
console.log(`built ${summary} in ${(performance.now() - startedMs).toFixed(0)} ms`);
