// Operating errors, one table: each carries etcd's gRPC status code and its exact
// message, because clients (clientv3, the etcd3 npm client, Patroni) match on
// the message text. The API layer turns an EtcdError into a gRPC/Connect error.

/** gRPC status codes (the numbers are the wire values). */
export enum GrpcCode {
  Canceled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
}

export class EtcdError extends Error {
  constructor(
    readonly code: GrpcCode,
    message: string,
  ) {
    super(message);
    this.name = "EtcdError";
  }
}

const C = GrpcCode;
const table = {
  emptyKey: [C.InvalidArgument, "etcdserver: key is not provided"],
  keyNotFound: [C.InvalidArgument, "etcdserver: key not found"],
  valueProvided: [C.InvalidArgument, "etcdserver: value is provided"],
  leaseProvided: [C.InvalidArgument, "etcdserver: lease is provided"],
  tooManyOps: [C.InvalidArgument, "etcdserver: too many operations in txn request"],
  // etcd 3.5's check; etcd 3.4 accepts unknown sort values and crashes sorting by them.
  invalidSortOption: [C.InvalidArgument, "etcdserver: invalid sort option"],
  duplicateKey: [C.InvalidArgument, "etcdserver: duplicate key given in txn request"],
  compacted: [C.OutOfRange, "etcdserver: mvcc: required revision has been compacted"],
  futureRevision: [C.OutOfRange, "etcdserver: mvcc: required revision is a future revision"],
  noSpace: [C.ResourceExhausted, "etcdserver: mvcc: database space exceeded"],
  leaseNotFound: [C.NotFound, "etcdserver: requested lease not found"],
  leaseExists: [C.FailedPrecondition, "etcdserver: lease already exists"],
  leaseTtlTooLarge: [C.OutOfRange, "etcdserver: too large lease TTL"],
  watchCanceled: [C.Canceled, "etcdserver: watch canceled"],
  memberExists: [C.FailedPrecondition, "etcdserver: member ID already exist"],
  peerUrlExists: [C.FailedPrecondition, "etcdserver: Peer URLs already exists"],
  memberNotEnoughStarted: [C.FailedPrecondition, "etcdserver: re-configuration failed due to not enough started members"],
  memberBadUrls: [C.InvalidArgument, "etcdserver: given member URLs are invalid"],
  memberNotFound: [C.NotFound, "etcdserver: member not found"],
  memberNotLearner: [C.FailedPrecondition, "etcdserver: can only promote a learner member"],
  learnerNotReady: [C.FailedPrecondition, "etcdserver: can only promote a learner member which is in sync with leader"],
  tooManyLearners: [C.FailedPrecondition, "etcdserver: too many learner members in cluster"],
  requestTooLarge: [C.InvalidArgument, "etcdserver: request is too large"],
  tooManyRequests: [C.ResourceExhausted, "etcdserver: too many requests"],
  rootUserNotExist: [C.FailedPrecondition, "etcdserver: root user does not exist"],
  rootRoleNotExist: [C.FailedPrecondition, "etcdserver: root user does not have root role"],
  userAlreadyExist: [C.FailedPrecondition, "etcdserver: user name already exists"],
  userEmpty: [C.InvalidArgument, "etcdserver: user name is empty"],
  userNotFound: [C.FailedPrecondition, "etcdserver: user name not found"],
  roleAlreadyExist: [C.FailedPrecondition, "etcdserver: role name already exists"],
  roleNotFound: [C.FailedPrecondition, "etcdserver: role name not found"],
  roleEmpty: [C.InvalidArgument, "etcdserver: role name is empty"],
  authFailed: [C.InvalidArgument, "etcdserver: authentication failed, invalid user ID or password"],
  permissionDenied: [C.PermissionDenied, "etcdserver: permission denied"],
  roleNotGranted: [C.FailedPrecondition, "etcdserver: role is not granted to the user"],
  permissionNotGranted: [C.FailedPrecondition, "etcdserver: permission is not granted to the role"],
  authNotEnabled: [C.FailedPrecondition, "etcdserver: authentication is not enabled"],
  invalidAuthToken: [C.Unauthenticated, "etcdserver: invalid auth token"],
  invalidAuthMgmt: [C.InvalidArgument, "etcdserver: invalid auth management"],
  authOldRevision: [C.InvalidArgument, "etcdserver: revision of auth store is old"],
  // etcd 3.5's check; etcd 3.4 stops on a grant without a permission.
  permissionNotGiven: [C.InvalidArgument, "etcdserver: permission not given"],
  noLeader: [C.Unavailable, "etcdserver: no leader"],
  notLeader: [C.FailedPrecondition, "etcdserver: not leader"],
  leaderChanged: [C.Unavailable, "etcdserver: leader changed"],
  notCapable: [C.Unavailable, "etcdserver: not capable"],
  stopped: [C.Unavailable, "etcdserver: server stopped"],
  timeout: [C.Unavailable, "etcdserver: request timed out"],
  timeoutDueToLeaderFail: [C.Unavailable, "etcdserver: request timed out, possibly due to previous leader failure"],
  timeoutDueToConnectionLost: [C.Unavailable, "etcdserver: request timed out, possibly due to connection lost"],
  timeoutWaitAppliedIndex: [C.Unavailable, "etcdserver: request timed out, waiting for the applied index took too long"],
  unhealthy: [C.Unavailable, "etcdserver: unhealthy cluster"],
  corrupt: [C.DataLoss, "etcdserver: corrupt cluster"],
  notSupportedForLearner: [C.Unavailable, "etcdserver: rpc not supported for learner"],
  badLeaderTransferee: [C.FailedPrecondition, "etcdserver: bad leader transferee"],
} as const satisfies Record<string, readonly [GrpcCode, string]>;

export type EtcdErrorName = keyof typeof table;

/** A fresh EtcdError for one of etcd's named errors: `throw etcdError("compacted")`. */
export function etcdError(name: EtcdErrorName): EtcdError {
  const [code, message] = table[name];
  return new EtcdError(code, message);
}

/** Programmer errors: a broken invariant stops the process (TigerBeetle style). */
export function assert(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${what}`);
}
