// etcdserverpb.Lease (etcd's v3rpc LeaseServer) and edgetcd.v1.BrowserLease.
// Grants and revokes go through the log; renewals and time-to-live are served
// by the leader's lessor. On the keep-alive stream an unknown or revoked lease
// is answered with TTL 0, not an error (etcd); any other failure ends the
// stream with etcd's error.
import type { ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import type { BrowserLease } from "../gen/edgetcd/v1/edgetcd_pb.ts";
import {
  LeaseKeepAliveResponseSchema,
  type Lease,
  type LeaseKeepAliveRequest,
  type LeaseKeepAliveResponse,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { EtcdError, etcdError } from "../errors.ts";
import type { Clock } from "../ports.ts";
import type { EtcdServer } from "../server/etcd-server.ts";
import { callerOf } from "./auth-context.ts";
import { guarded, toConnectError } from "./errors.ts";

/**
 * Renewals of one keep-alive stream read and not yet answered at most: in
 * progress at once (a follower's wait on the leader) or answered and waiting
 * for the client to read. Past it the stream is not read further.
 */
export const keepAlivesPendingPerStreamMax = 1000;

/** Answers one keep-alive stream sends before other clients get a turn of the event loop. */
export const keepAliveAnswersPerTurnMax = 16;

/** A browser stream renews no more often than this, whatever the TTL. */
export const browserKeepAliveIntervalMinMs = 500;

const leaseNotFoundMessage = etcdError("leaseNotFound").message;

/** One renewal as the keep-alive stream answers it: TTL 0 when the lease is gone. */
export async function keepAliveOnce(server: EtcdServer, request: LeaseKeepAliveRequest): Promise<LeaseKeepAliveResponse> {
  // The header is taken before the renewal, so its revision is never past the
  // renewal (a lease revoked at revision 3 never shows a keep-alive at 4).
  const header = server.header();
  let ttl: bigint;
  try {
    ttl = await server.leaseRenew(request.ID);
  } catch (error) {
    if (!(error instanceof EtcdError && error.message === leaseNotFoundMessage)) throw toConnectError(error);
    ttl = 0n;
  }
  return create(LeaseKeepAliveResponseSchema, { header, ID: request.ID, TTL: ttl });
}

export function leaseService(server: EtcdServer): ServiceImpl<typeof Lease> {
  return {
    leaseGrant: (request, context) => guarded(() => server.leaseGrant(request, callerOf(context))),
    leaseRevoke: (request, context) => guarded(() => server.leaseRevoke(request, callerOf(context))),
    leaseTimeToLive: (request) => guarded(() => server.leaseTimeToLive(request)),
    leaseLeases: () => guarded(() => server.leaseLeases()),
    async *leaseKeepAlive(requests) {
      // etcd renews one request at a time; here several run at once, so on a
      // follower (where each waits on a round trip to the leader) a stream
      // with many leases keeps up. Each answer carries its lease ID, which is
      // what clients match on; answers may come back out of request order.
      // Every request read is answered: a flooding stream is slowed (not read
      // further, and made to wait its turn), never dropped.
      const limits: PipelineLimits = {
        pendingMax: keepAlivesPendingPerStreamMax,
        resultsPerTurnMax: keepAliveAnswersPerTurnMax,
        nextTurn: () => new Promise((resolve) => server.clock.setTimer(0, resolve)),
      };
      yield* pipelined(requests, limits, (request) => keepAliveOnce(server, request));
    },
  };
}

/**
 * Keep-alive for clients that cannot stream requests: the server renews the
 * lease every third of its TTL (clientv3's pace) for as long as the call stays
 * open, streaming each answer; it ends after answering TTL 0 (lease gone).
 */
export function browserLeaseService(server: EtcdServer): ServiceImpl<typeof BrowserLease> {
  return {
    async *keepAlive(request, context) {
      while (!context.signal.aborted) {
        const response = await keepAliveOnce(server, request);
        yield response;
        if (response.TTL <= 0n) return;
        const intervalMs = Math.max(browserKeepAliveIntervalMinMs, (Number(response.TTL) * 1000) / 3);
        await sleep(server.clock, intervalMs, context.signal);
      }
    },
  };
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const onAbort = () => {
      timer.cancel();
      resolve();
    };
    const timer = clock.setTimer(ms, () => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

export interface PipelineLimits {
  /** Items read but not yet yielded at most; the source is not read further until one is yielded. */
  pendingMax: number;
  /** Results yielded before giving the event loop a turn, so one busy stream cannot hold it. */
  resultsPerTurnMax: number;
  /** Resolves on a later turn of the event loop. */
  nextTurn: () => Promise<void>;
}

/**
 * Runs `work` on each item of `source`, several at once, yielding the results
 * as they complete. Backpressure: at most `pendingMax` items are in work or
 * waiting to be yielded, so a client that sends faster than it reads stops
 * being read (and HTTP/2 flow control stops it) instead of growing a queue.
 * Every item read gets its result yielded unless a failure ends the iteration.
 */
export async function* pipelined<T, R>(source: AsyncIterable<T>, limits: PipelineLimits, work: (item: T) => Promise<R>): AsyncGenerator<R> {
  const results: R[] = [];
  let failure: { error: unknown } | undefined;
  let sourceDone = false;
  let inFlight = 0;
  let wakeConsumer: (() => void) | undefined;
  let wakeReader: (() => void) | undefined;
  const wake = () => {
    wakeConsumer?.();
    wakeConsumer = undefined;
  };
  const roomForMore = () => {
    wakeReader?.();
    wakeReader = undefined;
  };
  const reader = (async () => {
    try {
      for await (const item of source) {
        while (inFlight + results.length >= limits.pendingMax && failure === undefined) {
          await new Promise<void>((resolve) => (wakeReader = resolve));
        }
        if (failure !== undefined) return;
        inFlight++;
        work(item)
          .then(
            (result) => void results.push(result),
            (error: unknown) => void (failure ??= { error }),
          )
          .finally(() => {
            inFlight--;
            wake();
          });
      }
    } catch (error) {
      failure ??= { error };
    } finally {
      sourceDone = true;
      wake();
    }
  })();
  try {
    let yieldedThisTurn = 0;
    for (;;) {
      while (results.length > 0) {
        const result = results.shift() as R;
        roomForMore();
        yield result;
        if (++yieldedThisTurn >= limits.resultsPerTurnMax) {
          yieldedThisTurn = 0;
          await limits.nextTurn();
        }
      }
      if (failure !== undefined) throw failure.error;
      if (sourceDone && inFlight === 0) break;
      await new Promise<void>((resolve) => (wakeConsumer = resolve));
    }
  } finally {
    // Ended early (an error, or the client went away): release a reader waiting for room.
    failure ??= { error: undefined };
    roomForMore();
  }
  await reader;
}
