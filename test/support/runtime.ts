// The runtime under test: the one running the test file (Node, Bun or Deno).
import type { Runtime } from "../../src/ports.ts";

export type RuntimeName = "node" | "bun" | "deno";

export const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
export const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
export const runtimeName: RuntimeName = isBun ? "bun" : isDeno ? "deno" : "node";
/** For test titles: Node, Bun or Deno. */
export const runtimeTitle = { node: "Node", bun: "Bun", deno: "Deno" }[runtimeName];

export async function testRuntime(): Promise<Runtime> {
  if (isBun) return (await import("../../runtime/bun/runtime.ts")).bunRuntime;
  if (isDeno) return (await import("../../runtime/deno/runtime.ts")).denoRuntime;
  return (await import("../../runtime/node/runtime.ts")).nodeRuntime;
}

/** The command that runs a TypeScript file under the runtime running the tests. */
export function typeScriptCommand(script: string, args: string[] = []): [string, string[]] {
  if (isBun) return [process.execPath, [script, ...args]];
  if (isDeno) return [process.execPath, ["run", "-A", "--no-prompt", script, ...args]];
  return [process.execPath, ["--import", "tsx", script, ...args]];
}

/** A Node to run Node-only tools with (the build): this one, or the one on PATH (npm puts node_modules/.bin first). */
export const nodeProgram = isBun || isDeno ? "node" : process.execPath;
