// The etcd version edgetcd reports (/version, Status, the peer port, etcd's
// metrics), and why. Clients gate features on it: Kubernetes asks for watch
// progress only from etcd 3.4.31+ or 3.5.13+, python's etcd3gw picks its
// gateway prefix from it, etcdctl its learner commands. edgetcd serves etcd
// 3.4's API, wire and flags (its e2e suite is the target), including what
// 3.4.31 added that clients gate on (progress requests on a watch stream);
// it does not serve 3.5's additions (Downgrade, ...). So it reports 3.4.31,
// and the cluster version as etcd derives it (major.minor.0). Its own
// version is beside it where etcd's shape has room (/version's "edgetcd").
export const serverVersion = "3.4.31";
export const clusterVersion = "3.4.0";
