// The Digest port on Node, Bun and Deno: node:crypto's hash on the calling
// thread, at once (a SHA of a few dozen bytes) or piece by piece (a snapshot
// as it is streamed).
import { createHash } from "node:crypto";
import type { Digest } from "../../src/ports.ts";

const algorithms = { "SHA-1": "sha1", "SHA-256": "sha256" } as const;

export const hostDigest: Digest = Object.assign(
  (algorithm: "SHA-1" | "SHA-256", data: Uint8Array) => Promise.resolve(new Uint8Array(createHash(algorithms[algorithm]).update(data).digest())),
  {
    incremental(algorithm: "SHA-256") {
      const hash = createHash(algorithms[algorithm]);
      return {
        update: (data: Uint8Array) => void hash.update(data),
        digest: () => new Uint8Array(hash.digest()),
      };
    },
  },
);
