// Composition root of the ports on Bun.
import type { Runtime } from "../../src/ports.ts";
import { hostClock, hostRandom } from "../node/clock.ts";
import { WorkerPasswordHasher } from "../node/password-hasher.ts";
import { bunFileSystem } from "./fs.ts";
import { bunSqlite } from "./sqlite.ts";
import { hostDigest } from "../node/digest.ts";

export const bunRuntime: Runtime = {
  name: "bun",
  fs: bunFileSystem,
  sqlite: bunSqlite,
  clock: hostClock,
  random: hostRandom,
  passwords: new WorkerPasswordHasher(),
  digest: hostDigest,
};
