// Composition root for Deno (`deno run -A`): Deno's ports (runtime.ts), then the
// runtime-neutral command. Nothing here reaches runtime/faults/ (the test root
// is runtime/test/deno.ts).
import { runEdgetcd } from "../../src/cli/edgetcd.ts";
import { createHost, refuseTestVariables } from "../node/host.ts";
import { denoRuntime } from "./runtime.ts";

refuseTestVariables(process.env);
await runEdgetcd(createHost(denoRuntime), process.argv.slice(2), process.env);
