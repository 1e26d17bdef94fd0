// etcdserverpb.Cluster: membership, through Raft conf changes.
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  MemberAddResponseSchema,
  MemberListResponseSchema,
  MemberPromoteResponseSchema,
  MemberRemoveResponseSchema,
  MemberSchema,
  MemberUpdateResponseSchema,
  type Cluster,
} from "../gen/etcdserverpb/rpc_pb.ts";
import type { EtcdServer } from "../server/etcd-server.ts";
import { guarded } from "./errors.ts";

export function clusterService(server: EtcdServer): ServiceImpl<typeof Cluster> {
  // etcd's cluster responses carry no revision in their header.
  const header = () => server.header(0n);
  return {
    memberList: () => guarded(() => create(MemberListResponseSchema, { header: header(), members: server.members() })),
    memberAdd: (request) =>
      guarded(async () => {
        const added = await server.memberAdd(request.peerURLs, request.isLearner);
        return create(MemberAddResponseSchema, {
          header: header(),
          member: create(MemberSchema, { ID: BigInt(added.id), peerURLs: added.peerUrls, isLearner: added.isLearner }),
          members: server.members(),
        });
      }),
    memberRemove: (request) =>
      guarded(async () => {
        await server.memberRemove(Number(request.ID));
        return create(MemberRemoveResponseSchema, { header: header(), members: server.members() });
      }),
    memberUpdate: (request) =>
      guarded(async () => {
        await server.memberUpdate(Number(request.ID), request.peerURLs);
        return create(MemberUpdateResponseSchema, { header: header(), members: server.members() });
      }),
    memberPromote: (request) =>
      guarded(async () => {
        await server.memberPromote(Number(request.ID));
        return create(MemberPromoteResponseSchema, { header: header(), members: server.members() });
      }),
  };
}
