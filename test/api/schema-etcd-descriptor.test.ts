// Compares our schema with the descriptors compiled into etcd 3.4's own Go
// packages (the gzipped FileDescriptorProto bytes that gogoproto embeds in
// each *.pb.go). Every message, field (number, type, label, type name,
// oneof), enum value and RPC of etcd 3.4 must appear unchanged in ours; the
// only things we may add are the etcd 3.5 additions listed below.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { fromBinary, isFieldSet } from "@bufbuild/protobuf";
import {
  FieldDescriptorProtoSchema,
  FileDescriptorProtoSchema,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { file_etcdserverpb_rpc } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { file_mvccpb_kv } from "../../src/gen/mvccpb/kv_pb.ts";
import { file_authpb_auth } from "../../src/gen/authpb/auth_pb.ts";
import { file_v3lockpb_v3lock } from "../../src/gen/v3lockpb/v3lock_pb.ts";
import { file_v3electionpb_v3election } from "../../src/gen/v3electionpb/v3election_pb.ts";

const ETCD_SOURCE = process.env["ETCD_SOURCE"] ?? "/usr/share/gocode/src/go.etcd.io/etcd";

// Reads the `var fileDescriptorX = []byte{ 0x1f, 0x8b, ... }` literal.
function etcdDescriptor(goFile: string, variable: string): FileDescriptorProto {
  const source = readFileSync(join(ETCD_SOURCE, goFile), "utf8");
  const start = source.indexOf(`var ${variable} = []byte{`);
  assert.ok(start >= 0, `${variable} not found in ${goFile}`);
  const literal = source.slice(start, source.indexOf("}", start));
  const bytes = Uint8Array.from(literal.match(/0x[0-9a-f]{2}/gi) ?? [], (hex) => Number.parseInt(hex, 16));
  return fromBinary(FileDescriptorProtoSchema, gunzipSync(bytes));
}

// One line per schema element, keyed by its full name.
function facts(file: FileDescriptorProto): Map<string, string> {
  const out = new Map<string, string>();
  const addEnum = (scope: string, descriptor: EnumDescriptorProto) => {
    for (const value of descriptor.value) out.set(`enum ${scope}.${descriptor.name}.${value.name}`, String(value.number));
  };
  const addMessage = (scope: string, descriptor: DescriptorProto) => {
    const name = `${scope}.${descriptor.name}`;
    out.set(`message ${name}`, "");
    for (const field of descriptor.field) {
      // oneof_index is proto2-optional: 0 is a real index only when set.
      const inOneof = isFieldSet(field, FieldDescriptorProtoSchema.field.oneofIndex);
      const oneof = inOneof ? `oneof=${descriptor.oneofDecl[field.oneofIndex]?.name ?? "?"}` : "";
      out.set(`field ${name}.${field.name}`, `#${field.number} type=${field.type} label=${field.label} ${field.typeName} ${oneof}`);
    }
    for (const nested of descriptor.enumType) addEnum(name, nested);
    for (const nested of descriptor.nestedType) addMessage(name, nested);
  };
  for (const message of file.messageType) addMessage(file.package, message);
  for (const descriptor of file.enumType) addEnum(file.package, descriptor);
  for (const service of file.service) {
    for (const method of service.method) {
      out.set(
        `rpc ${file.package}.${service.name}.${method.name}`,
        `${method.inputType} -> ${method.outputType} clientStreaming=${method.clientStreaming === true} serverStreaming=${method.serverStreaming === true}`,
      );
    }
  }
  return out;
}

// What etcd 3.5 added on top of 3.4 (hash_revision and linearizable arrived
// in 3.5 patch releases).
const ADDED_IN_3_5 = new Set([
  "rpc etcdserverpb.Maintenance.Downgrade",
  "message etcdserverpb.DowngradeRequest",
  "field etcdserverpb.DowngradeRequest.action",
  "field etcdserverpb.DowngradeRequest.version",
  "enum etcdserverpb.DowngradeRequest.DowngradeAction.VALIDATE",
  "enum etcdserverpb.DowngradeRequest.DowngradeAction.ENABLE",
  "enum etcdserverpb.DowngradeRequest.DowngradeAction.CANCEL",
  "message etcdserverpb.DowngradeResponse",
  "field etcdserverpb.DowngradeResponse.header",
  "field etcdserverpb.DowngradeResponse.version",
  "rpc etcdserverpb.Auth.AuthStatus",
  "message etcdserverpb.AuthStatusRequest",
  "message etcdserverpb.AuthStatusResponse",
  "field etcdserverpb.AuthStatusResponse.header",
  "field etcdserverpb.AuthStatusResponse.enabled",
  "field etcdserverpb.AuthStatusResponse.authRevision",
  "field etcdserverpb.AuthUserAddRequest.hashedPassword",
  "field etcdserverpb.AuthUserChangePasswordRequest.hashedPassword",
  "field etcdserverpb.HashKVResponse.hash_revision",
  "field etcdserverpb.MemberListRequest.linearizable",
]);

const files: [string, string, string, FileDescriptorProto][] = [
  ["etcdserverpb", "etcdserver/etcdserverpb/rpc.pb.go", "fileDescriptorRpc", file_etcdserverpb_rpc.proto],
  ["mvccpb", "mvcc/mvccpb/kv.pb.go", "fileDescriptorKv", file_mvccpb_kv.proto],
  ["authpb", "auth/authpb/auth.pb.go", "fileDescriptorAuth", file_authpb_auth.proto],
  ["v3lockpb", "etcdserver/api/v3lock/v3lockpb/v3lock.pb.go", "fileDescriptorV3Lock", file_v3lockpb_v3lock.proto],
  [
    "v3electionpb",
    "etcdserver/api/v3election/v3electionpb/v3election.pb.go",
    "fileDescriptorV3Election",
    file_v3electionpb_v3election.proto,
  ],
];

for (const [name, goFile, variable, ours] of files) {
  test(`${name}: matches etcd 3.4's compiled descriptor, plus only 3.5 additions`, () => {
    const theirs = etcdDescriptor(goFile, variable);
    assert.equal(ours.package, theirs.package);
    const expected = facts(theirs);
    const actual = facts(ours);
    assert.ok(expected.size > 10, "etcd descriptor looks empty");
    const differences: string[] = [];
    for (const [key, value] of expected) {
      if (actual.get(key) !== value) differences.push(`${key}: etcd ${value}, ours ${actual.get(key) ?? "missing"}`);
    }
    for (const key of actual.keys()) {
      if (!expected.has(key) && !ADDED_IN_3_5.has(key)) differences.push(`${key}: not in etcd`);
    }
    assert.deepEqual(differences, []);
  });
}

test("the 3.5 additions are all present", () => {
  const ours = new Set(files.flatMap(([, , , file]) => [...facts(file).keys()]));
  assert.deepEqual([...ADDED_IN_3_5].filter((key) => !ours.has(key)), []);
});
