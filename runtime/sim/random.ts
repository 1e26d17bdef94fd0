// The Random port over the simulator's seeded PRNG.

import type { Random } from "../../src/ports.ts";
import { Prng } from "./prng.ts";

export function simRandom(source: Prng | number): Random {
  const prng = typeof source === "number" ? new Prng(source) : source;
  return {
    int: (bound) => prng.int(bound),
    bytes: (length) => prng.bytes(length),
  };
}
