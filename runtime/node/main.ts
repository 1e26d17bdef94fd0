// Composition root for Node: Node's ports, then the runtime-neutral command.
// Nothing here reaches runtime/faults/ (test/tidy.test.ts): the faults and
// mutants live in the test root, runtime/test/node.ts.
import { runEdgetcd } from "../../src/cli/edgetcd.ts";
import { createHost, refuseTestVariables } from "./host.ts";
import { nodeRuntime } from "./runtime.ts";

refuseTestVariables(process.env);
await runEdgetcd(createHost(nodeRuntime), process.argv.slice(2), process.env);
