// The client matrix's scenario (test/compat/client-matrix.test.ts) with etcd
// 3.4's Go clientv3 and the concurrency package, plus the server-side Lock and
// Election services through their generated clients. Prints one JSON line: a
// list of [step, outcome] pairs, normalized so that two servers given the same
// requests print the same list (revisions relative to the first one seen, no
// lease IDs or member IDs).
//
// Built in GOPATH mode against Debian's golang-etcd-server-dev:
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o /tmp/... .
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/clientv3/concurrency"
	"go.etcd.io/etcd/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/etcdserver/api/v3lock/v3lockpb"
	"go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes"
	"go.etcd.io/etcd/mvcc/mvccpb"
	"google.golang.org/grpc/status"
)

// How long one call may take before the scenario gives up on it.
const callTimeout = 10 * time.Second

type transcript struct {
	steps [][2]interface{}
}

func (t *transcript) add(name string, outcome interface{}) {
	t.steps = append(t.steps, [2]interface{}{name, outcome})
}

// Records what value makes of a response, or the error when there is one
// (value reads the response, which is nil after an error).
func (t *transcript) resultOf(name string, err error, value func() interface{}) {
	if err != nil {
		t.add(name, errorOutcome(err))
		return
	}
	t.add(name, value())
}

// Records value, or the error when there is one.
func (t *transcript) result(name string, value interface{}, err error) {
	if err != nil {
		t.add(name, errorOutcome(err))
		return
	}
	t.add(name, value)
}

// The errors the scenario expects, by the name a Go program compares them with.
var identities = []struct {
	name string
	err  error
}{
	{"rpctypes.ErrLeaseNotFound", rpctypes.ErrLeaseNotFound},
	{"rpctypes.ErrCompacted", rpctypes.ErrCompacted},
	{"rpctypes.ErrFutureRev", rpctypes.ErrFutureRev},
	{"rpctypes.ErrEmptyKey", rpctypes.ErrEmptyKey},
	{"concurrency.ErrElectionNoLeader", concurrency.ErrElectionNoLeader},
	{"context.DeadlineExceeded", context.DeadlineExceeded},
}

// An error as a Go program sees it: its identity (== one of the known errors), gRPC code and text.
func errorOutcome(err error) map[string]interface{} {
	identity := ""
	for _, known := range identities {
		if err == known.err {
			identity = known.name
		}
	}
	code := "none"
	if etcdError, ok := err.(rpctypes.EtcdError); ok {
		code = etcdError.Code().String()
	} else if grpcStatus, ok := status.FromError(err); ok {
		code = grpcStatus.Code().String()
	}
	return map[string]interface{}{"error": map[string]interface{}{"identity": identity, "code": code, "message": err.Error()}}
}

type scenario struct {
	client   *clientv3.Client
	endpoint string
	prefix   string
	// The revision before the scenario's first write: revisions are recorded relative to it.
	baseRevision int64
	t            transcript
}

func (s *scenario) relative(revision int64) int64 { return revision - s.baseRevision }

func (s *scenario) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

func (s *scenario) keyValues(kvs []*mvccpb.KeyValue) [][2]string {
	pairs := [][2]string{}
	for _, kv := range kvs {
		pairs = append(pairs, [2]string{string(kv.Key)[len(s.prefix):], string(kv.Value)})
	}
	return pairs
}

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "host:port of the server")
	prefix := flag.String("prefix", "/client-matrix/go/", "where the scenario's keys live")
	flag.Parse()
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{*endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer client.Close()
	s := &scenario{client: client, endpoint: *endpoint, prefix: *prefix}
	s.kv()
	s.txn()
	s.watch()
	s.lease()
	s.leaseExpiry()
	s.lock()
	s.election()
	s.maintenance()
	s.compaction()
	if err := json.NewEncoder(os.Stdout).Encode(s.t.steps); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func (s *scenario) kv() {
	ctx, cancel := s.context()
	defer cancel()
	p := s.prefix
	start, err := s.client.Get(ctx, p)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s.baseRevision = start.Header.Revision
	for _, key := range []string{"a", "b", "c"} {
		put, err := s.client.Put(ctx, p+key, "value-"+key)
		if err == nil {
			s.t.add("kv.put."+key, map[string]interface{}{"revision": s.relative(put.Header.Revision)})
		} else {
			s.t.result("kv.put."+key, nil, err)
		}
	}
	overwrite, err := s.client.Put(ctx, p+"a", "value-a2", clientv3.WithPrevKV())
	s.t.resultOf("kv.put.prevKv", err, func() interface{} { return string(overwrite.PrevKv.Value) })
	get, err := s.client.Get(ctx, p+"a")
	if err == nil {
		kv := get.Kvs[0]
		s.t.add("kv.get", map[string]interface{}{"value": string(kv.Value), "version": kv.Version, "createRevision": s.relative(kv.CreateRevision), "modRevision": s.relative(kv.ModRevision)})
	} else {
		s.t.result("kv.get", nil, err)
	}
	missing, err := s.client.Get(ctx, p+"missing")
	s.t.resultOf("kv.get.missing", err, func() interface{} { return missing.Count })
	all, err := s.client.Get(ctx, p, clientv3.WithPrefix())
	s.t.resultOf("kv.range.prefix", err, func() interface{} { return s.keyValues(all.Kvs) })
	limited, err := s.client.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithLimit(2), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	s.t.resultOf("kv.range.limitDescending", err, func() interface{} {
		return map[string]interface{}{"kvs": s.keyValues(limited.Kvs), "more": limited.More, "count": limited.Count}
	})
	counted, err := s.client.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithCountOnly())
	s.t.resultOf("kv.range.countOnly", err, func() interface{} { return map[string]interface{}{"count": counted.Count, "kvs": len(counted.Kvs)} })
	deleted, err := s.client.Delete(ctx, p+"b")
	s.t.resultOf("kv.delete", err, func() interface{} { return deleted.Deleted })
	deletedMissing, err := s.client.Delete(ctx, p+"b")
	s.t.resultOf("kv.delete.missing", err, func() interface{} { return deletedMissing.Deleted })
	after, err := s.client.Get(ctx, p, clientv3.WithPrefix())
	s.t.resultOf("kv.range.afterDelete", err, func() interface{} { return s.keyValues(after.Kvs) })
	_, err = s.client.Put(ctx, p+"leased", "x", clientv3.WithLease(clientv3.LeaseID(0x5eed5eed)))
	s.t.result("error.putWithMissingLease", "no error", err)
	_, err = s.client.Put(ctx, "", "x")
	s.t.result("error.putEmptyKey", "no error", err)
}

func (s *scenario) txn() {
	ctx, cancel := s.context()
	defer cancel()
	key := s.prefix + "txn"
	if _, err := s.client.Put(ctx, key, "old"); err != nil {
		s.t.result("txn.setup", nil, err)
		return
	}
	for _, name := range []string{"txn.cas.success", "txn.cas.failure"} {
		response, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.Value(key), "=", "old")).
			Then(clientv3.OpPut(key, "new")).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			s.t.result(name, nil, err)
			continue
		}
		outcome := map[string]interface{}{"succeeded": response.Succeeded, "responses": len(response.Responses)}
		if !response.Succeeded {
			outcome["else"] = s.keyValues(response.Responses[0].GetResponseRange().Kvs)
		}
		s.t.add(name, outcome)
	}
	// A compare on a key's version and a missing key's create revision, and a nested txn.
	response, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(key), ">", 1), clientv3.Compare(clientv3.CreateRevision(s.prefix+"nobody"), "=", 0)).
		Then(clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", "new")}, []clientv3.Op{clientv3.OpPut(key, "nested")}, nil)).
		Commit()
	s.t.resultOf("txn.nested", err, func() interface{} {
		return map[string]interface{}{"succeeded": response.Succeeded, "nestedSucceeded": response.Responses[0].GetResponseTxn().Succeeded}
	})
	final, err := s.client.Get(ctx, key)
	s.t.resultOf("txn.after", err, func() interface{} { return s.keyValues(final.Kvs) })
}

// Reads events from a watch channel until `want` arrived or a few seconds passed.
func (s *scenario) events(channel clientv3.WatchChan, want int) [][3]string {
	events := [][3]string{}
	deadline := time.After(5 * time.Second)
	for len(events) < want {
		select {
		case response, open := <-channel:
			if !open {
				return events
			}
			for _, event := range response.Events {
				events = append(events, [3]string{event.Type.String(), string(event.Kv.Key)[len(s.prefix):], string(event.Kv.Value)})
			}
		case <-deadline:
			return events
		}
	}
	return events
}

func (s *scenario) watch() {
	ctx, cancel := s.context()
	defer cancel()
	watchPrefix := s.prefix + "w/"
	channel := s.client.Watch(ctx, watchPrefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	created := <-channel
	s.t.add("watch.created", created.Created)
	first, err := s.client.Put(ctx, watchPrefix+"x", "1")
	if err != nil {
		s.t.result("watch.put", nil, err)
		return
	}
	s.client.Put(ctx, watchPrefix+"x", "2")
	s.client.Delete(ctx, watchPrefix+"x")
	s.t.add("watch.events", s.events(channel, 3))
	resumed := s.client.Watch(ctx, watchPrefix, clientv3.WithPrefix(), clientv3.WithRev(first.Header.Revision+1))
	s.t.add("watch.resume", s.events(resumed, 2))
}

func (s *scenario) lease() {
	ctx, cancel := s.context()
	defer cancel()
	grant, err := s.client.Grant(ctx, 5)
	if err != nil {
		s.t.result("lease.grant", nil, err)
		return
	}
	s.t.add("lease.grant", grant.TTL)
	keepAlive, err := s.client.KeepAliveOnce(ctx, grant.ID)
	s.t.resultOf("lease.keepAliveOnce", err, func() interface{} { return keepAlive.TTL })
	key := s.prefix + "leased"
	_, err = s.client.Put(ctx, key, "held", clientv3.WithLease(grant.ID))
	s.t.result("lease.put", "ok", err)
	ttl, err := s.client.TimeToLive(ctx, grant.ID, clientv3.WithAttachedKeys())
	if err == nil {
		keys := []string{}
		for _, attached := range ttl.Keys {
			keys = append(keys, string(attached)[len(s.prefix):])
		}
		s.t.add("lease.timeToLive", map[string]interface{}{"grantedTTL": ttl.GrantedTTL, "remainingInRange": ttl.TTL > 0 && ttl.TTL <= 5, "keys": keys})
	} else {
		s.t.result("lease.timeToLive", nil, err)
	}
	leases, err := s.client.Leases(ctx)
	if err == nil {
		listed := false
		for _, status := range leases.Leases {
			listed = listed || status.ID == grant.ID
		}
		s.t.add("lease.list", listed)
	} else {
		s.t.result("lease.list", nil, err)
	}
	_, err = s.client.Revoke(ctx, grant.ID)
	s.t.result("lease.revoke", "ok", err)
	gone, err := s.client.Get(ctx, key)
	s.t.resultOf("lease.keyAfterRevoke", err, func() interface{} { return gone.Count })
	after, err := s.client.TimeToLive(ctx, grant.ID)
	s.t.resultOf("lease.timeToLiveAfterRevoke", err, func() interface{} { return after.TTL })
	_, err = s.client.Revoke(ctx, grant.ID)
	s.t.result("lease.revokeAgain", "no error", err)
	_, err = s.client.KeepAliveOnce(ctx, grant.ID)
	s.t.result("lease.keepAliveAfterRevoke", "no error", err)
}

// A lease asked for 1 s (below etcd's minimum TTL) that nobody keeps alive: it expires with its key.
func (s *scenario) leaseExpiry() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*callTimeout)
	defer cancel()
	grant, err := s.client.Grant(ctx, 1)
	if err != nil {
		s.t.result("lease.expiry.grant", nil, err)
		return
	}
	s.t.add("lease.expiry.grant", grant.TTL)
	key := s.prefix + "expiring"
	s.client.Put(ctx, key, "soon gone", clientv3.WithLease(grant.ID))
	gone := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		response, err := s.client.Get(ctx, key)
		if err == nil && response.Count == 0 {
			gone = true
			break
		}
	}
	s.t.add("lease.expiry.keyGone", gone)
	_, err = s.client.KeepAliveOnce(ctx, grant.ID)
	s.t.result("lease.expiry.keepAlive", "no error", err)
}

func (s *scenario) lock() {
	ctx, cancel := s.context()
	defer cancel()
	holder, err := concurrency.NewSession(s.client, concurrency.WithTTL(10))
	if err != nil {
		s.t.result("lock.session", nil, err)
		return
	}
	defer holder.Close()
	waiter, _ := concurrency.NewSession(s.client, concurrency.WithTTL(10))
	defer waiter.Close()
	name := s.prefix + "lock"
	first := concurrency.NewMutex(holder, name)
	s.t.result("lock.acquire", "ok", first.Lock(ctx))
	second := concurrency.NewMutex(waiter, name)
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	s.t.result("lock.contended", "acquired", second.Lock(short))
	cancelShort()
	s.t.result("lock.release", "ok", first.Unlock(ctx))
	s.t.result("lock.reacquire", "ok", second.Lock(ctx))
	s.t.result("lock.releaseAgain", "ok", second.Unlock(ctx))

	// The server-side Lock service (etcd's v3lock), as `etcdctl lock` uses it.
	locks := v3lockpb.NewLockClient(s.client.ActiveConnection())
	locked, err := locks.Lock(ctx, &v3lockpb.LockRequest{Name: []byte(name), Lease: int64(holder.Lease())})
	if err == nil {
		s.t.add("lock.service.lock", regexp.MustCompile(`/[0-9a-f]+$`).MatchString(string(locked.Key)))
		_, err = locks.Unlock(ctx, &v3lockpb.UnlockRequest{Key: locked.Key})
		s.t.result("lock.service.unlock", "ok", err)
	} else {
		s.t.result("lock.service.lock", nil, err)
	}
	_, err = locks.Lock(ctx, &v3lockpb.LockRequest{Name: []byte(name), Lease: 0x5eed5eed})
	s.t.result("lock.service.missingLease", "no error", err)
}

func (s *scenario) election() {
	ctx, cancel := s.context()
	defer cancel()
	session, err := concurrency.NewSession(s.client, concurrency.WithTTL(10))
	if err != nil {
		s.t.result("election.session", nil, err)
		return
	}
	defer session.Close()
	name := s.prefix + "election"
	election := concurrency.NewElection(session, name)
	leaderValue := func(step string) {
		leader, err := election.Leader(ctx)
		if err == nil {
			s.t.add(step, string(leader.Kvs[0].Value))
		} else {
			s.t.result(step, nil, err)
		}
	}
	s.t.result("election.campaign", "ok", election.Campaign(ctx, "first"))
	leaderValue("election.leader")
	s.t.result("election.proclaim", "ok", election.Proclaim(ctx, "second"))
	leaderValue("election.leaderAfterProclaim")
	s.t.result("election.resign", "ok", election.Resign(ctx))
	leaderValue("election.leaderAfterResign")

	// The server-side Election service (etcd's v3election).
	elections := v3electionpb.NewElectionClient(s.client.ActiveConnection())
	campaign, err := elections.Campaign(ctx, &v3electionpb.CampaignRequest{Name: []byte(name), Lease: int64(session.Lease()), Value: []byte("served")})
	if err != nil {
		s.t.result("election.service.campaign", nil, err)
		return
	}
	s.t.add("election.service.campaign", string(campaign.Leader.Name) == name)
	leader, err := elections.Leader(ctx, &v3electionpb.LeaderRequest{Name: []byte(name)})
	s.t.resultOf("election.service.leader", err, func() interface{} { return string(leader.Kv.Value) })
	_, err = elections.Resign(ctx, &v3electionpb.ResignRequest{Leader: campaign.Leader})
	s.t.result("election.service.resign", "ok", err)
	_, err = elections.Leader(ctx, &v3electionpb.LeaderRequest{Name: []byte(name)})
	s.t.result("election.service.leaderAfterResign", "no error", err)
	_, err = elections.Campaign(ctx, &v3electionpb.CampaignRequest{Name: []byte(name), Lease: 0x5eed5eed, Value: []byte("nobody")})
	s.t.result("election.service.missingLease", "no error", err)
}

func (s *scenario) maintenance() {
	ctx, cancel := s.context()
	defer cancel()
	response, err := s.client.Status(ctx, s.endpoint)
	if err != nil {
		s.t.result("maintenance.status", nil, err)
		return
	}
	s.t.add("maintenance.status", map[string]interface{}{
		"version":       regexp.MustCompile(`^3\.4\.\d+$`).MatchString(response.Version),
		"dbSize":        response.DbSize > 0,
		"leaderIsSelf":  response.Leader == response.Header.MemberId,
		"raftIndex":     response.RaftIndex > 0,
		"raftTerm":      response.RaftTerm > 0,
		"errors":        len(response.Errors),
		"headerRevised": response.Header.Revision > s.baseRevision,
	})
	members, err := s.client.MemberList(ctx)
	s.t.resultOf("maintenance.memberList", err, func() interface{} {
		return map[string]interface{}{"count": len(members.Members), "name": members.Members[0].Name}
	})
}

func (s *scenario) compaction() {
	ctx, cancel := s.context()
	defer cancel()
	key := s.prefix + "a"
	current, err := s.client.Put(ctx, key, "before compaction")
	if err != nil {
		s.t.result("compaction.put", nil, err)
		return
	}
	revision := current.Header.Revision
	_, err = s.client.Compact(ctx, revision, clientv3.WithCompactPhysical())
	s.t.result("compaction.compact", "ok", err)
	_, err = s.client.Get(ctx, key, clientv3.WithRev(revision-1))
	s.t.result("compaction.getCompacted", "no error", err)
	atRevision, err := s.client.Get(ctx, key, clientv3.WithRev(revision))
	s.t.resultOf("compaction.getAtCompactRevision", err, func() interface{} { return s.keyValues(atRevision.Kvs) })
	_, err = s.client.Compact(ctx, revision)
	s.t.result("compaction.compactAgain", "no error", err)
	_, err = s.client.Compact(ctx, revision+1000)
	s.t.result("compaction.compactFuture", "no error", err)
	_, err = s.client.Get(ctx, key, clientv3.WithRev(revision+1000))
	s.t.result("compaction.getFuture", "no error", err)
	watchContext, cancelWatch := context.WithTimeout(ctx, 5*time.Second)
	defer cancelWatch()
	response := <-s.client.Watch(watchContext, key, clientv3.WithRev(revision-1))
	outcome := map[string]interface{}{"canceled": response.Canceled, "compactRevision": s.relative(response.CompactRevision)}
	if response.Err() != nil {
		outcome["error"] = errorOutcome(response.Err())["error"]
	}
	s.t.add("compaction.watchCompacted", outcome)
}
