// Named limits of the peer transport, with etcd 3.4's rafthttp values where it has one.

export interface PeerLimits {
  /** Messages queued for a peer whose stream is up (etcd's streamBufSize). */
  streamQueueMessagesMax: number;
  /** Messages queued for a peer while its stream is down (etcd's pipelineBufSize). */
  disconnectedQueueMessagesMax: number;
  /** A frame is cut once its messages reach about this many bytes (one message may exceed it). */
  frameBytesTarget: number;
  /** The largest frame a receiver accepts; more drops the connection. */
  frameBytesMax: number;
  /** The largest snapshot a receiver accepts: the announced length is checked before anything is allocated. */
  snapshotBytesMax: number;
  /** Snapshot data is written in chunks of this size, waiting for the stream to drain between them. */
  snapshotChunkBytes: number;
  /** Snapshots being sent to one peer at once; Raft sends one and waits for its status. */
  snapshotsInFlightMax: number;
  /** Time for a peer to accept a stream before the attempt counts as failed (etcd's dial timeout). */
  dialTimeoutMs: number;
  /** First reconnect delay after a failure; doubles per failed attempt up to the max, with jitter. */
  reconnectDelayMinMs: number;
  reconnectDelayMaxMs: number;
  /** An idle stream carries a keepalive frame this often (etcd: ConnReadTimeout / 3). */
  keepaliveIntervalMs: number;
  /** A receiver drops a stream that sent nothing for this long (etcd's ConnReadTimeout). */
  streamIdleTimeoutMs: number;
  /** A sender drops a stream that has not drained for this long (etcd's ConnWriteTimeout). */
  streamWriteTimeoutMs: number;
}

/**
 * The largest snapshot worth receiving for a backend quota. A snapshot is the
 * leader's backend file, which may pass the quota: SQLite keeps free pages,
 * and deletes, compactions and alarms still write once the quota raised its
 * alarm. A quarter more (at least 64 MiB) covers that; more than that is no
 * backend a member of this cluster could hold.
 */
export function snapshotBytesMaxFor(quotaBackendBytes: number): number {
  return quotaBackendBytes + Math.max(snapshotQuotaSlackBytesMin, Math.floor(quotaBackendBytes / 4));
}

const snapshotQuotaSlackBytesMin = 64 * 1024 * 1024;

export const defaultPeerLimits: PeerLimits = {
  streamQueueMessagesMax: 4096,
  disconnectedQueueMessagesMax: 64,
  frameBytesTarget: 1024 * 1024,
  // etcd's largest App is maxSizePerMsg (1 MiB) plus one entry of up to
  // --max-request-bytes; 64 MiB leaves room for raised request limits.
  frameBytesMax: 64 * 1024 * 1024,
  // A member passes snapshotBytesMaxFor(its --quota-backend-bytes); this is
  // the same for etcd's default quota.
  snapshotBytesMax: snapshotBytesMaxFor(2 * 1024 * 1024 * 1024),
  snapshotChunkBytes: 256 * 1024,
  snapshotsInFlightMax: 1,
  dialTimeoutMs: 1000,
  reconnectDelayMinMs: 100, // etcd's stream reader retries every 100 ms
  reconnectDelayMaxMs: 2000,
  keepaliveIntervalMs: 5000 / 3,
  streamIdleTimeoutMs: 5000,
  streamWriteTimeoutMs: 5000,
};
