// Clock and randomness from the host (shared by Node and Bun: both provide these globals).
import { randomBytes, randomInt } from "node:crypto";
import type { Clock, Random } from "../../src/ports.ts";

export const hostClock: Clock = {
  nowMs: () => performance.now(),
  wallMs: () => Date.now(),
  setTimer(ms, fn) {
    const handle = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(handle) };
  },
  setInterval(ms, fn) {
    const handle = setInterval(fn, ms);
    return { cancel: () => clearInterval(handle) };
  },
};

export const hostRandom: Random = {
  int: (bound) => randomInt(bound),
  bytes: (length) => new Uint8Array(randomBytes(length)),
};
