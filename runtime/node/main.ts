// Composition root for Node: Node's ports, then the runtime-neutral command.
import { runEdgetcd } from "../../src/cli/edgetcd.ts";
import { createHost } from "./host.ts";
import { nodeRuntime } from "./runtime.ts";

await runEdgetcd(createHost(nodeRuntime), process.argv.slice(2), process.env);
