// etcdserverpb.Cluster: membership, through Raft conf changes.
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
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
import { callerOf } from "./auth-context.ts";
import { guarded } from "./errors.ts";

export function clusterService(server: EtcdServer): ServiceImpl<typeof Cluster> {
  // etcd's cluster responses carry no revision in their header.
  const header = () => server.header(0n);
  // Membership changes are root only with auth on (etcd's checkMembershipOperationPermission).
  const admin = (context: HandlerContext) => server.auth.checkAdmin(callerOf(context));
  return {
    memberList: () => guarded(() => create(MemberListResponseSchema, { header: header(), members: server.members() })),
    memberAdd: (request, context) =>
      guarded(async () => {
        admin(context);
        const added = await server.memberAdd(request.peerURLs, request.isLearner);
        return create(MemberAddResponseSchema, {
          header: header(),
          member: create(MemberSchema, { ID: BigInt(added.id), peerURLs: added.peerUrls, isLearner: added.isLearner }),
          members: server.members(),
        });
      }),
    memberRemove: (request, context) =>
      guarded(async () => {
        admin(context);
        await server.memberRemove(Number(request.ID));
        return create(MemberRemoveResponseSchema, { header: header(), members: server.members() });
      }),
    memberUpdate: (request, context) =>
      guarded(async () => {
        admin(context);
        await server.memberUpdate(Number(request.ID), request.peerURLs);
        return create(MemberUpdateResponseSchema, { header: header(), members: server.members() });
      }),
    memberPromote: (request, context) =>
      guarded(async () => {
        admin(context);
        await server.memberPromote(Number(request.ID));
        return create(MemberPromoteResponseSchema, { header: header(), members: server.members() });
      }),
  };
}
