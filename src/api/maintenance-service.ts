// etcdserverpb.Maintenance: what etcdctl's endpoint commands need.
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  DefragmentResponseSchema,
  HashResponseSchema,
  SnapshotResponseSchema,
  HashKVResponseSchema,
  MoveLeaderResponseSchema,
  StatusResponseSchema,
  type Maintenance,
} from "../gen/etcdserverpb/rpc_pb.ts";
import type { EtcdServer } from "../server/etcd-server.ts";
import { callerOf } from "./auth-context.ts";
import { guarded } from "./errors.ts";

const snapshotChunkBytes = 32 * 1024;

const notYet = (what: string) => () =>
  Promise.reject(new ConnectError(`edgetcd: ${what} is not implemented yet`, Code.Unimplemented));

export function maintenanceService(server: EtcdServer): ServiceImpl<typeof Maintenance> {
  // Root only with auth on, as etcd's authMaintenanceServer (and 3.5's MoveLeader).
  const admin = (context: HandlerContext) => server.auth.checkAdmin(callerOf(context));
  return {
    status: () =>
      guarded(() => {
        const status = server.status();
        return create(StatusResponseSchema, {
          header: server.header(),
          version: status.version,
          dbSize: BigInt(status.dbSizeBytes),
          dbSizeInUse: BigInt(status.dbSizeInUseBytes),
          leader: status.leader,
          raftIndex: BigInt(status.raftIndex),
          raftTerm: BigInt(status.raftTerm),
          raftAppliedIndex: BigInt(status.raftAppliedIndex),
          isLearner: status.isLearner,
          errors: status.errors,
        });
      }),
    alarm: (request) => guarded(() => server.alarm(request)),
    hashKV: (request, context) =>
      guarded(async () => {
        admin(context);
        const hash = await server.hashKV(Number(request.revision));
        return create(HashKVResponseSchema, {
          header: server.header(),
          hash: hash.hash,
          compactRevision: BigInt(hash.compactRevision),
        });
      }),
    defragment: (_request, context) =>
      guarded(() => {
        admin(context);
        server.defragment();
        return create(DefragmentResponseSchema, { header: server.header() });
      }),
    hash: (_request, context) =>
      guarded(() => {
        admin(context);
        return create(HashResponseSchema, { header: server.header(), hash: server.hash() });
      }),
    // The backend as etcd's bbolt file in 32 KiB pieces, then its SHA-256 (as
    // etcd sends it, for `etcdctl snapshot restore` to check).
    snapshot: async function* (_request, context) {
      const exported = await guarded(() => {
        admin(context);
        return server.backendSnapshot();
      });
      try {
        let sent = 0;
        for await (const blob of exported.chunks(snapshotChunkBytes)) {
          sent += blob.length;
          yield create(SnapshotResponseSchema, { header: server.header(), remainingBytes: BigInt(exported.size - sent), blob });
        }
        yield create(SnapshotResponseSchema, { header: server.header(), remainingBytes: 0n, blob: exported.sha256() });
      } finally {
        await exported.close();
      }
    },
    moveLeader: (request, context) =>
      guarded(async () => {
        admin(context);
        await server.moveLeader(Number(request.targetID));
        return create(MoveLeaderResponseSchema, { header: server.header() });
      }),
    downgrade: notYet("Downgrade"),
  };
}
