// v3electionpb.Election (etcd's v3election server): clientv3's Election
// recipe run on the server, with the same keys, so campaigns here and from
// clientv3 or `etcdctl elect` compete in one election.
//
// A candidate puts `<name>/<lease id in hex>` attached to its lease; the key
// created first leads. Campaign returns once every key created before the
// candidate's is gone. Proclaim and Resign act only while the leader key still
// has the create revision the campaign returned (a txn compare), so a leader
// whose lease expired cannot speak for the next one.
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { TxnRequestSchema, type ResponseHeader } from "../gen/etcdserverpb/rpc_pb.ts";
import { Event_EventType, type KeyValue } from "../gen/mvccpb/kv_pb.ts";
import {
  LeaderKeySchema,
  type CampaignRequest,
  type CampaignResponse,
  type Election,
  type LeaderKey,
  type LeaderResponse,
} from "../gen/v3electionpb/v3election_pb.ts";
import { EtcdError, GrpcCode } from "../errors.ts";
import { equalBytes } from "../server/facade.ts";
import type { EtcdServer } from "../server/etcd-server.ts";
import { callerOf, serverAs } from "./auth-context.ts";
import { guardedAsRecipe } from "./errors.ts";
import {
  createRevisionIs,
  deleteOp,
  firstCreate,
  prefixEnd,
  putOp,
  rangeKvs,
  rangeOp,
  recipeKey,
  recipePrefix,
  sessionLease,
  singleKey,
  waitDeletes,
  watchResponses,
} from "./lock-service.ts";

// The recipe's errors, as clientv3 words them (plain errors: gRPC Unknown).
const notLeaderMessage = "election: not leader";
const noLeaderMessage = "election: no leader";
const missingLeaderKeyMessage = '"leader" field must be provided';

export function electionService(server: EtcdServer): ServiceImpl<typeof Election> {
  // Each call runs as its caller (see serverAs).
  const as = (context: HandlerContext) => serverAs(server, callerOf(context));
  return {
    campaign: (request, context) => guardedAsRecipe(() => campaign(as(context), request, context.signal)),
    proclaim: (request, context) =>
      guardedAsRecipe(async () => {
        const header = await proclaim(as(context), leaderOf(request.leader), request.value);
        return { $typeName: "v3electionpb.ProclaimResponse", header };
      }),
    leader: (request, context) =>
      guardedAsRecipe(async () => {
        const response = await as(context).range(firstCreate(recipePrefix(request.name)));
        const kv = response.kvs[0];
        if (kv === undefined) throw new EtcdError(GrpcCode.Unknown, noLeaderMessage);
        return { $typeName: "v3electionpb.LeaderResponse", header: response.header, kv };
      }),
    resign: (request, context) =>
      guardedAsRecipe(async () => {
        const header = await resign(as(context), leaderOf(request.leader));
        return { $typeName: "v3electionpb.ResignResponse", header };
      }),
    observe: (request, context) => observe(as(context), recipePrefix(request.name), context.signal),
  };
}

function leaderOf(leader: LeaderKey | undefined): LeaderKey {
  if (leader === undefined) throw new EtcdError(GrpcCode.Unknown, missingLeaderKeyMessage);
  return leader;
}

async function campaign(server: EtcdServer, request: CampaignRequest, signal: AbortSignal): Promise<CampaignResponse> {
  const lease = request.lease !== 0n ? request.lease : await sessionLease(server);
  const prefix = recipePrefix(request.name);
  const key = recipeKey(prefix, lease);
  const response = await server.txn(
    create(TxnRequestSchema, {
      compare: [createRevisionIs(key, 0n)],
      success: [putOp(key, request.value, lease)],
      failure: [rangeOp(singleKey(key))],
    }),
  );
  const header = response.header as ResponseHeader;
  const leader = create(LeaderKeySchema, { name: request.name, key, rev: header.revision, lease });
  if (!response.succeeded) {
    // This lease already campaigns: keep its place, update the value.
    const existing = rangeKvs(response, 0)[0] as KeyValue;
    leader.rev = existing.createRevision;
    if (!equalBytes(existing.value, request.value)) {
      try {
        await proclaim(server, leader, request.value);
      } catch (error) {
        await resign(server, leader).catch(() => undefined);
        throw error;
      }
    }
  }
  try {
    await waitDeletes(server, prefix, leader.rev - 1n, signal);
  } catch (error) {
    // A campaign given up by its caller withdraws the candidate (clientv3).
    if (signal.aborted) await resign(server, leader).catch(() => undefined);
    throw error;
  }
  return { $typeName: "v3electionpb.CampaignResponse", header, leader };
}

async function proclaim(server: EtcdServer, leader: LeaderKey, value: Uint8Array): Promise<ResponseHeader | undefined> {
  const response = await server.txn(
    create(TxnRequestSchema, { compare: [createRevisionIs(leader.key, leader.rev)], success: [putOp(leader.key, value, leader.lease)] }),
  );
  if (!response.succeeded) throw new EtcdError(GrpcCode.Unknown, notLeaderMessage);
  return response.header;
}

async function resign(server: EtcdServer, leader: LeaderKey): Promise<ResponseHeader | undefined> {
  const response = await server.txn(
    create(TxnRequestSchema, { compare: [createRevisionIs(leader.key, leader.rev)], success: [deleteOp(leader.key)] }),
  );
  return response.header;
}

/**
 * The leader's value now and at every change: the first-created key under
 * the prefix (or, when there is none, the first one put), then each put to
 * that key until it is deleted, then the next leader (clientv3's observe).
 */
async function* observe(server: EtcdServer, prefix: Uint8Array, signal: AbortSignal): AsyncGenerator<LeaderResponse> {
  try {
    while (!signal.aborted) {
      const current = await server.range(firstCreate(prefix));
      let kv = current.kvs[0];
      let header = current.header as ResponseHeader;
      if (kv === undefined) {
        const start = header.revision;
        for await (const response of watchResponses(server, prefix, prefixEnd(prefix), start, signal)) {
          const put = response.events.find((event) => event.type === Event_EventType.PUT);
          if (put?.kv === undefined) continue; // a delete would make the loop spin
          kv = put.kv;
          header = { ...(response.header as ResponseHeader), revision: kv.modRevision };
          break;
        }
        if (kv === undefined) return;
      }
      yield { $typeName: "v3electionpb.LeaderResponse", header, kv };
      watching: for await (const response of watchResponses(server, kv.key, undefined, header.revision + 1n, signal)) {
        for (const event of response.events) {
          if (event.type === Event_EventType.DELETE) break watching;
          yield { $typeName: "v3electionpb.LeaderResponse", header: response.header, kv: event.kv };
        }
      }
    }
  } catch (error) {
    // clientv3's observe closes its channel on any failure; the call then ends cleanly.
    if (signal.aborted || error instanceof EtcdError) return;
    throw error;
  }
}
