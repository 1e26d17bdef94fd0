// Composition root of the ports on Node.
import type { Runtime } from "../../src/ports.ts";
import { hostClock, hostRandom } from "./clock.ts";
import { nodeFileSystem } from "./fs.ts";
import { WorkerPasswordHasher } from "./password-hasher.ts";
import { nodeSqlite } from "./sqlite.ts";
import { hostDigest } from "./digest.ts";

export const nodeRuntime: Runtime = {
  name: "node",
  fs: nodeFileSystem,
  sqlite: nodeSqlite,
  clock: hostClock,
  random: hostRandom,
  passwords: new WorkerPasswordHasher(),
  digest: hostDigest,
};
