// How Raft counts bytes of entries for `maxSizePerMsg` batching. A fixed
// overhead per entry stands in for the encoded header (term, index, type), so
// that even empty entries have a size and a budget of 0 means "one entry".

import type { Entry } from "./types.ts";

export const entryOverheadBytes = 16;

export function entrySize(entry: Entry): number {
  return entry.data.byteLength + entryOverheadBytes;
}

/** The longest prefix of `entries` within `maxBytes`, always at least one entry. */
export function limitSize(entries: Entry[], maxBytes: number): Entry[] {
  if (entries.length === 0) return entries;
  let total = entrySize(entries[0] as Entry);
  let count = 1;
  for (; count < entries.length; count++) {
    total += entrySize(entries[count] as Entry);
    if (total > maxBytes) break;
  }
  return count === entries.length ? entries : entries.slice(0, count);
}
