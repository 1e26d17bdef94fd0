// Composition root of the ports on Deno. Deno runs Node's built-in modules, so
// its ports are Node's: node:fs with fsync, node:sqlite (Deno's own SQLite),
// node:http2 for the listeners, node:crypto. Only the name differs, so logs,
// /version and the metrics say which runtime serves.
import type { Runtime } from "../../src/ports.ts";
import { nodeRuntime } from "../node/runtime.ts";

export const denoRuntime: Runtime = { ...nodeRuntime, name: "deno" };
