// A user's key permissions merged into sorted, disjoint intervals, one list
// for reads and one for writes, so a check is a binary search. etcd 3.4's
// rules (auth/range_perm_cache.go):
//   - a permission with an empty range end is the single key;
//   - a range end of one zero byte means "every key from `key` on";
//   - a ranged request is allowed only when the union of the user's intervals
//     covers all of [key, rangeEnd); a single-key request when one covers it.
// A request with range end "\0" therefore needs a permission that is itself
// open-ended: a single-key or bounded grant never lets a from-key watch or
// range through (the watch bypass etcd fixed in 2026, GHSA-xg4h-6gfc-h4m8).
import { compareBytes } from "../mvcc/key-bytes.ts";

/** authpb.Permission.Type values. */
export const permissionRead = 0;
export const permissionWrite = 1;
export const permissionReadWrite = 2;

export interface KeyPermission {
  key: Uint8Array;
  rangeEnd: Uint8Array;
  permType: number;
}

/** [start, end): `end` undefined is +infinity. */
interface Interval {
  start: Uint8Array;
  end: Uint8Array | undefined;
}

/** The smallest key greater than `key`: the end of the single-key interval. */
function successor(key: Uint8Array): Uint8Array {
  const next = new Uint8Array(key.length + 1);
  next.set(key);
  return next;
}

function isOpenEnd(rangeEnd: Uint8Array): boolean {
  return rangeEnd.length === 1 && rangeEnd[0] === 0;
}

function intervalOf(key: Uint8Array, rangeEnd: Uint8Array): Interval {
  if (rangeEnd.length === 0) return { start: key, end: successor(key) };
  return { start: key, end: isOpenEnd(rangeEnd) ? undefined : rangeEnd };
}

/** end a >= end b, with undefined as +infinity. */
function endAtLeast(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined) return true;
  if (b === undefined) return false;
  return compareBytes(a, b) >= 0;
}

/** Sorted, disjoint, non-touching intervals covering the same keys as `intervals`. */
function merged(intervals: Interval[]): Interval[] {
  const sorted = intervals.filter((i) => i.end === undefined || compareBytes(i.start, i.end) < 0).sort((a, b) => compareBytes(a.start, b.start));
  const out: Interval[] = [];
  for (const interval of sorted) {
    const last = out[out.length - 1];
    // Touching intervals merge too: [a, b) and [b, c) cover [a, c).
    if (last !== undefined && (last.end === undefined || compareBytes(interval.start, last.end) <= 0)) {
      if (!endAtLeast(last.end, interval.end)) last.end = interval.end;
    } else {
      out.push({ start: interval.start, end: interval.end });
    }
  }
  return out;
}

/** The merged interval whose start is the greatest at or before `key`, if any. */
function covering(intervals: Interval[], key: Uint8Array): Interval | undefined {
  let low = 0;
  let high = intervals.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareBytes((intervals[middle] as Interval).start, key) <= 0) low = middle + 1;
    else high = middle;
  }
  return low === 0 ? undefined : intervals[low - 1];
}

export class MergedPermissions {
  private readonly read: Interval[];
  private readonly write: Interval[];

  constructor(permissions: Iterable<KeyPermission>) {
    const read: Interval[] = [];
    const write: Interval[] = [];
    for (const permission of permissions) {
      const interval = intervalOf(permission.key, permission.rangeEnd);
      if (permission.permType === permissionRead || permission.permType === permissionReadWrite) read.push(interval);
      if (permission.permType === permissionWrite || permission.permType === permissionReadWrite) write.push(interval);
    }
    this.read = merged(read);
    this.write = merged(write);
  }

  /** Whether the request's key or range is wholly covered for reads (permissionRead) or writes (permissionWrite). */
  allows(permType: number, key: Uint8Array, rangeEnd: Uint8Array): boolean {
    const intervals = permType === permissionRead ? this.read : this.write;
    const wanted = intervalOf(key, rangeEnd);
    // An empty or inverted range selects no key; like a single key, it needs its start.
    const end = wanted.end !== undefined && compareBytes(wanted.end, wanted.start) <= 0 ? successor(key) : wanted.end;
    const interval = covering(intervals, key);
    return interval !== undefined && endAtLeast(interval.end, end) && (interval.end === undefined || compareBytes(key, interval.end) < 0);
  }
}
