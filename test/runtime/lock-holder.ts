// Child process for the lock contract test: takes the lock given on the command
// line with the runtime under test, says "locked", and holds it until killed.
import { testRuntime } from "../support/runtime.ts";

const path = process.argv[2];
if (path === undefined) throw new Error("usage: lock-holder.ts <lock path>");
const runtime = await testRuntime();
await runtime.fs.lock(path);
process.stdout.write("locked\n");
setInterval(() => undefined, 1000);
