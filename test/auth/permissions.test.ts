// etcd's key-permission rules (auth/range_perm_cache.go) on merged intervals.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MergedPermissions, permissionRead, permissionReadWrite, permissionWrite, type KeyPermission } from "../../src/auth/permissions.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const open = new Uint8Array([0]);
const none = new Uint8Array(0);
const grant = (key: string, rangeEnd: Uint8Array | string, permType: number): KeyPermission => ({
  key: bytes(key),
  rangeEnd: typeof rangeEnd === "string" ? bytes(rangeEnd) : rangeEnd,
  permType,
});

test("a single-key grant covers that key only, never a range from it", () => {
  const merged = new MergedPermissions([grant("/k", none, permissionRead)]);
  assert.equal(merged.allows(permissionRead, bytes("/k"), none), true);
  assert.equal(merged.allows(permissionRead, bytes("/k0"), none), false);
  assert.equal(merged.allows(permissionRead, bytes("/k"), open), false, "from-key (GHSA-xg4h-6gfc-h4m8)");
  assert.equal(merged.allows(permissionRead, bytes("/k"), bytes("/l")), false);
  assert.equal(merged.allows(permissionRead, bytes("/k"), bytes("/k\u0000")), true, "the range holding exactly the key");
  assert.equal(merged.allows(permissionWrite, bytes("/k"), none), false, "read is not write");
});

test("a prefix grant covers ranges inside it and nothing reaching past its end", () => {
  const merged = new MergedPermissions([grant("/a/", "/a0", permissionReadWrite)]);
  assert.equal(merged.allows(permissionWrite, bytes("/a/x"), none), true);
  assert.equal(merged.allows(permissionRead, bytes("/a/"), bytes("/a0")), true);
  assert.equal(merged.allows(permissionRead, bytes("/a/b"), bytes("/a/c")), true);
  assert.equal(merged.allows(permissionRead, bytes("/a/"), bytes("/a1")), false);
  assert.equal(merged.allows(permissionRead, bytes("/a"), bytes("/a0")), false, "starts before the grant");
  assert.equal(merged.allows(permissionRead, bytes("/a/"), open), false);
  assert.equal(merged.allows(permissionRead, bytes("/a0"), none), false, "the end is exclusive");
});

test("touching and overlapping grants merge; an open-ended grant covers from-key requests", () => {
  const merged = new MergedPermissions([grant("/a", "/c", permissionRead), grant("/c", "/e", permissionRead), grant("/x", open, permissionRead)]);
  assert.equal(merged.allows(permissionRead, bytes("/a"), bytes("/e")), true);
  assert.equal(merged.allows(permissionRead, bytes("/b"), bytes("/d")), true);
  assert.equal(merged.allows(permissionRead, bytes("/a"), bytes("/f")), false);
  assert.equal(merged.allows(permissionRead, bytes("/y"), open), true);
  assert.equal(merged.allows(permissionRead, bytes("/x"), open), true);
  assert.equal(merged.allows(permissionRead, bytes("/w"), open), false);
  assert.equal(merged.allows(permissionRead, bytes("\u00ff\u00ff"), none), true);
});

test("read and write grants are kept apart; readwrite gives both", () => {
  const merged = new MergedPermissions([grant("r", none, permissionRead), grant("w", none, permissionWrite), grant("rw", none, permissionReadWrite)]);
  assert.deepEqual(
    ["r", "w", "rw"].map((key) => [merged.allows(permissionRead, bytes(key), none), merged.allows(permissionWrite, bytes(key), none)]),
    [[true, false], [false, true], [true, true]],
  );
});

test("an empty or inverted request range needs its start key", () => {
  const merged = new MergedPermissions([grant("/k", none, permissionRead)]);
  assert.equal(merged.allows(permissionRead, bytes("/k"), bytes("/a")), true);
  assert.equal(merged.allows(permissionRead, bytes("/z"), bytes("/a")), false);
});
