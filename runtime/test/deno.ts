// Composition root for tests on Deno: as runtime/test/node.ts, with Deno's ports.
import { runEdgetcd } from "../../src/cli/edgetcd.ts";
import { createHost } from "../node/host.ts";
import { denoRuntime } from "../deno/runtime.ts";
import { testFaultsFromEnv } from "./faults-from-env.ts";

await runEdgetcd(createHost(denoRuntime, testFaultsFromEnv(denoRuntime, process.env)), process.argv.slice(2), process.env);
