// The runtime under test: Bun's when the tests run under Bun, Node's otherwise.
import type { Runtime } from "../../src/ports.ts";

export const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

export async function testRuntime(): Promise<Runtime> {
  if (isBun) return (await import("../../runtime/bun/runtime.ts")).bunRuntime;
  return (await import("../../runtime/node/runtime.ts")).nodeRuntime;
}
