// The Digest port on Node and Bun: node:crypto's hash, computed at once on
// the calling thread (a SHA of a few dozen bytes, or of a snapshot once).
import { createHash } from "node:crypto";
import type { Digest } from "../../src/ports.ts";

const algorithms = { "SHA-1": "sha1", "SHA-256": "sha256" } as const;

export const hostDigest: Digest = (algorithm, data) => Promise.resolve(new Uint8Array(createHash(algorithms[algorithm]).update(data).digest()));
