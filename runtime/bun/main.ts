// Composition root for Bun: Bun's ports (bun:sqlite, Bun file APIs), then the
// runtime-neutral command. The HTTP listener is shared with Node: Bun runs
// node:net/node:http2, which serves gRPC to etcd clients. Nothing here
// reaches runtime/faults/ (the test root is runtime/test/bun.ts).
import { runEdgetcd } from "../../src/cli/edgetcd.ts";
import { createHost, refuseTestVariables } from "../node/host.ts";
import { bunRuntime } from "./runtime.ts";

refuseTestVariables(process.env);
await runEdgetcd(createHost(bunRuntime), process.argv.slice(2), process.env);
