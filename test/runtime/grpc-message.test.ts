// grpc-message encoded as grpc-go encodes it (only bytes outside 0x20–0x7E
// and "%"), whatever Connect wrote; the etcd3 client suite
// (test/compat/etcd3-client-auth.test.ts) checks the clients' view end to end.
import { test } from "node:test";
import assert from "node:assert/strict";
import { grpcGoMessage } from "../../runtime/node/grpc-message.ts";

test("etcd's messages travel as plain text, as from etcd", () => {
  assert.equal(grpcGoMessage(encodeURIComponent("etcdserver: role name not found")), "etcdserver: role name not found");
  assert.equal(
    grpcGoMessage(encodeURIComponent("etcdserver: authentication failed, invalid user ID or password")),
    "etcdserver: authentication failed, invalid user ID or password",
  );
});

test("percent, control bytes and non-ASCII stay percent-encoded (UTF-8)", () => {
  assert.equal(grpcGoMessage(encodeURIComponent("100% done\n")), "100%25 done%0A");
  assert.equal(grpcGoMessage(encodeURIComponent("clé")), "cl%C3%A9");
});

test("a value that is not valid percent-encoding is left as it is", () => {
  assert.equal(grpcGoMessage("50%"), "50%");
});
