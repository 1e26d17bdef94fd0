// etcdserverpb.Cluster: membership. A single node lists itself; changes need Raft.
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { MemberListResponseSchema, type Cluster } from "../gen/etcdserverpb/rpc_pb.ts";
import type { EtcdServer } from "../server/etcd-server.ts";
import { guarded } from "./errors.ts";

const notYet = (what: string) => () =>
  Promise.reject(new ConnectError(`edgetcd: ${what} needs the clustered server (not implemented yet)`, Code.Unimplemented));

export function clusterService(server: EtcdServer): ServiceImpl<typeof Cluster> {
  return {
    memberList: () =>
      // etcd's cluster responses carry no revision in their header.
      guarded(() => create(MemberListResponseSchema, { header: server.header(0n), members: server.members() })),
    memberAdd: notYet("MemberAdd"),
    memberRemove: notYet("MemberRemove"),
    memberUpdate: notYet("MemberUpdate"),
    memberPromote: notYet("MemberPromote"),
  };
}
