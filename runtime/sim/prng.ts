// A small seeded PRNG (xoshiro128**, seeded through splitmix32). Every random
// choice of a simulation is drawn from one of these, created from one seed, so
// a run is a pure function of its seed and a failure replays exactly.
// No Math.random anywhere in the simulator: it would make seeds lie.

const twoToThe32 = 4294967296;

function splitmix32(state: { value: number }): number {
  state.value = (state.value + 0x9e3779b9) | 0;
  let mixed = state.value ^ (state.value >>> 16);
  mixed = Math.imul(mixed, 0x21f0aaad);
  mixed ^= mixed >>> 15;
  mixed = Math.imul(mixed, 0x735a2d97);
  mixed ^= mixed >>> 15;
  return mixed >>> 0;
}

function rotateLeft(value: number, bits: number): number {
  return (value << bits) | (value >>> (32 - bits));
}

export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` is any safe integer; its high and low 32 bits both matter. */
  constructor(readonly seed: number) {
    if (!Number.isSafeInteger(seed)) throw new Error(`seed must be a safe integer, got ${seed}`);
    const low = seed >>> 0;
    const high = Math.floor(seed / twoToThe32) >>> 0;
    const state = { value: low ^ Math.imul(high, 0x85ebca6b) };
    this.s0 = splitmix32(state);
    this.s1 = splitmix32(state);
    this.s2 = splitmix32(state);
    this.s3 = splitmix32(state);
    // xoshiro's one forbidden state; splitmix32 makes it practically unreachable.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A uniformly random unsigned 32-bit integer. */
  nextUint32(): number {
    const result = Math.imul(rotateLeft(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const shifted = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= shifted;
    this.s3 = rotateLeft(this.s3, 11);
    return result;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.nextUint32() / twoToThe32;
  }

  /** An integer in [0, bound); bound in [1, 2^32]. */
  int(bound: number): number {
    if (!(bound >= 1 && bound <= twoToThe32)) throw new Error(`bound out of range: ${bound}`);
    return Math.floor(this.float() * bound);
  }

  /** An integer in [min, max], both included. */
  between(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /** True with probability `probability`. */
  chance(probability: number): boolean {
    return probability > 0 && this.float() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[this.int(items.length)] as T;
  }

  /** A new array with the items in random order (Fisher–Yates). */
  shuffled<T>(items: readonly T[]): T[] {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const item = copy[i] as T;
      copy[i] = copy[j] as T;
      copy[j] = item;
    }
    return copy;
  }

  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i += 4) {
      let word = this.nextUint32();
      for (let k = i; k < Math.min(i + 4, length); k++) {
        out[k] = word & 0xff;
        word >>>= 8;
      }
    }
    return out;
  }

  /** An independent stream derived from this one (consumes one draw). */
  fork(): Prng {
    return new Prng(this.nextUint32() * 0x200000 + (this.nextUint32() >>> 11));
  }
}
