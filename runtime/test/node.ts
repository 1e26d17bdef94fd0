// Composition root for tests on Node: Node's ports wrapped with the faults the
// environment asks for (faults-from-env.ts). bin/edgetcd runs it only with
// EDGETCD_ROOT=test, which the test harness sets; an installed package does
// not contain it.
import { runEdgetcd } from "../../src/cli/edgetcd.ts";
import { createHost } from "../node/host.ts";
import { nodeRuntime } from "../node/runtime.ts";
import { testFaultsFromEnv } from "./faults-from-env.ts";

await runEdgetcd(createHost(nodeRuntime, testFaultsFromEnv(nodeRuntime, process.env)), process.argv.slice(2), process.env);
