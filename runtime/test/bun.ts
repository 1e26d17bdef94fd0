// Composition root for tests on Bun: as runtime/test/node.ts, with Bun's ports.
import { runEdgetcd } from "../../src/cli/edgetcd.ts";
import { createHost } from "../node/host.ts";
import { bunRuntime } from "../bun/runtime.ts";
import { testFaultsFromEnv } from "./faults-from-env.ts";

await runEdgetcd(createHost(bunRuntime, testFaultsFromEnv(bunRuntime, process.env)), process.argv.slice(2), process.env);
