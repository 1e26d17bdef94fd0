// A member's HashKV asked over the peer port, for the corruption checks
// (src/server/corruption.ts), as etcd's /members/hashkv: the body is an
// etcdserverpb.HashKVRequest, the answer a HashKVResponse (its header names
// the member). POST, not etcd's GET with a body, which fetch cannot send.
// An etcd error (a revision compacted or not yet applied there) is answered
// 400 with its message. Only current members are answered (admission).
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { HashKVRequestSchema, HashKVResponseSchema, ResponseHeaderSchema, type HashKVResponse } from "../gen/etcdserverpb/rpc_pb.ts";
import { EtcdError, etcdError } from "../errors.ts";
import type { NodeId } from "../raft/types.ts";
import type { PeerRoute } from "./routes.ts";
import { admitPeerRequest, type PeerAdmission } from "./admission.ts";
import { peerRequestHeaders } from "./headers.ts";
import { answer, answerProto, readBody, type PeerPost } from "./lease-forward.ts";

export const hashKvPath = "/members/hashkv";
/** A HashKVRequest is one varint. */
const hashKvRequestBytesMax = 64;

/** What the route needs from the member serving it (the server itself). */
export interface HashKvHost {
  identity: { memberId: NodeId };
  hashKV(revision: number): Promise<{ hash: number; compactRevision: number; revision: number }>;
}

export function hashKvRoute(host: () => HashKvHost | undefined, admission: PeerAdmission): PeerRoute {
  return {
    name: "this member's HashKV, for the corruption checks",
    matches: (request) => request.path === hashKvPath,
    handle(request) {
      if (admitPeerRequest(request, admission) === undefined) return;
      if (request.method !== "POST") return answer(request, 405, "Method Not Allowed\n");
      const serving = host();
      if (serving === undefined) return answer(request, 503, `${etcdError("notCapable").message}\n`);
      void (async () => {
        let revision: number;
        try {
          revision = Number(fromBinary(HashKVRequestSchema, await readBody(request.body, hashKvRequestBytesMax)).revision);
        } catch {
          return answer(request, 400, "error reading body\n");
        }
        try {
          const hash = await serving.hashKV(revision);
          const response = create(HashKVResponseSchema, {
            header: create(ResponseHeaderSchema, { memberId: BigInt(serving.identity.memberId), revision: BigInt(hash.revision) }),
            hash: hash.hash,
            compactRevision: BigInt(hash.compactRevision),
          });
          answerProto(request, toBinary(HashKVResponseSchema, response));
        } catch (error) {
          answer(request, error instanceof EtcdError ? 400 : 500, `${error instanceof Error ? error.message : String(error)}\n`);
        }
      })();
    },
  };
}

/** Asks member `to` (at `peerUrls`) for its HashKV at `revision`; throws etcd's error when it answers one. */
export async function askHashKV(
  post: PeerPost,
  route: { from: NodeId; to: NodeId; clusterId: bigint; peerUrls: readonly string[] },
  revision: number,
  timeoutMs: number,
): Promise<HashKVResponse> {
  const body = toBinary(HashKVRequestSchema, create(HashKVRequestSchema, { revision: BigInt(revision) }));
  const headers = { ...peerRequestHeaders(route.from, route.to, route.clusterId), "content-type": "application/protobuf" };
  let failure = "no peer URL";
  for (const url of route.peerUrls) {
    try {
      const reply = await post(url.replace(/\/$/, "") + hashKvPath, body, headers, timeoutMs);
      if (reply.status === 200) return fromBinary(HashKVResponseSchema, reply.body);
      const text = new TextDecoder().decode(reply.body).trim();
      if (reply.status === 400 && text === etcdError("compacted").message) throw etcdError("compacted");
      if (reply.status === 400 && text === etcdError("futureRevision").message) throw etcdError("futureRevision");
      failure = `${reply.status} ${text}`;
    } catch (error) {
      if (error instanceof EtcdError) throw error;
      failure = error instanceof Error ? error.message : String(error);
    }
  }
  throw new Error(`hashkv from ${route.to.toString(16)}: ${failure}`);
}
