package node

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/starlingcache/starling/node/hlc"

	"github.com/starlingcache/starling/node/store"
	"github.com/starlingcache/starling/transport"
)

// entry is one key's full state as replication moves it.
type entry = store.Entry

// serveLocal answers a read, or an operation about the node itself, from
// this node's own store. Writes go through coordinate.
func (n *Node) serveLocal(req *transport.Request) *transport.Response {
	if req.Op.Keyed() {
		n.stats.local.Add(1)
	}
	st := n.store
	switch req.Op {
	case transport.OpPing:
		return &transport.Response{}
	case transport.OpMembers:
		return &transport.Response{Members: n.Members()}
	case transport.OpGet, transport.OpGetEx:
		val, expireAt, ver, ok := st.GetEntry(req.Key)
		if !ok {
			return notFound()
		}
		return &transport.Response{Value: val, TTL: remainingMillis(expireAt), Version: ver}
	case transport.OpTTL:
		expireAt, ok := st.TTL(req.Key)
		if !ok {
			return notFound()
		}
		return &transport.Response{TTL: remainingMillis(expireAt)}
	case transport.OpExists:
		_, ok := st.TTL(req.Key)
		return boolResponse(ok)
	case transport.OpDBSize:
		keys, expiring, avgTTL := n.keyspace(req.Delta == 1)
		return &transport.Response{Int: keys, Version: uint64(expiring), TTL: avgTTL}
	case transport.OpScan:
		return n.scanStep(req)
	case transport.OpFlushAll:
		st.Flush()
		return &transport.Response{}
	case transport.OpStats:
		s := n.Stats()
		return &transport.Response{Stats: &s}
	case transport.OpLookup:
		e, ok := st.Lookup(req.Key)
		if !ok {
			return notFound()
		}
		resp := &transport.Response{Value: e.Value, TTL: remainingMillis(e.ExpireAt), Version: e.Version}
		if e.Tombstone {
			resp.Int = 1
		}
		return resp
	case transport.OpLeave:
		n.leaveOnce.Do(func() { close(n.leaveRequested) })
		return &transport.Response{}
	case transport.OpHandoffDone:
		return n.noteHandoffDone(req)
	}
	if req.Op.Keyed() {
		// A write that reached here by mistake still gets the full path.
		resp, _, _ := n.coordinate(req, new(transport.Response), time.Time{})
		return resp
	}
	return errResponse(fmt.Errorf("%w: %s", transport.ErrUnknownOp, req.Op))
}

// keyspace counts the live keys this node is the primary for, so that
// summing it over the members counts every key once however many copies
// exist; with expiry, also how many of them have an expiry and their
// average remaining time to live in milliseconds (INFO's keyspace line),
// -1 if it has some but the sample met none of them.
//
// With one copy per key every key held counts: the store's counters
// answer, and the average comes from a sample, the first expiring keys
// of a walk (the store places keys by hash, so they are as good as
// random), as Redis estimates its avg_ttl. Otherwise it walks the store:
// O(keys), like the scan DBSIZE implies in a cluster, but without copying
// values, and then the average is exact.
func (n *Node) keyspace(expiry bool) (keys, expiring, avgTTL int64) {
	now := time.Now().UnixNano()
	var sum float64 // ms; 100-year TTLs over millions of keys overflow an int64
	var sampled int64
	if n.cfg.Replicas == 1 {
		if !expiry {
			return int64(n.store.Len()), 0, 0
		}
		st := n.store.Stats()
		visited := 0
		n.store.RangeKeys(func(_ string, tombstone bool, exp int64) bool {
			if !tombstone && exp > now {
				sum += float64(exp-now) / float64(time.Millisecond)
				sampled++
			}
			visited++
			return sampled < ttlSampleKeys && visited < ttlSampleVisits
		})
		keys, expiring = st.Entries, st.Expiring
	} else {
		r, self := n.view.Load().ring, n.cfg.Name
		n.store.RangeKeys(func(key string, tombstone bool, exp int64) bool {
			if tombstone || (r.Len() > 0 && r.Owner(key) != self) {
				return true
			}
			keys++
			if exp > now {
				expiring++
				sum += float64(exp-now) / float64(time.Millisecond)
				sampled++
			}
			return true
		})
	}
	switch {
	case sampled > 0:
		avgTTL = int64(sum / float64(sampled))
	case expiring > 0:
		avgTTL = -1 // a sample too sparse to say: not an average of 0
	}
	return keys, expiring, avgTTL
}

// The sample behind a node's average time to live with one copy per key:
// up to ttlSampleKeys keys with an expiry, among at most ttlSampleVisits
// keys walked.
const (
	ttlSampleKeys   = 1024
	ttlSampleVisits = 64 << 10
)

// coordinate applies a write as the key's coordinator: it reads the key's
// current state, computes the new one, stamps it with a fresh version and
// stores it, all under the key's shard lock, so concurrent writes to one
// key serialize and replicas receive whole states in version order. It
// returns the reply, built in resp (zeroed, supplied by the caller so a
// pooled batch can supply it) unless an error replaces it, and the entry
// to replicate if anything was written. A plain SET takes its version from
// at, a clock reading the caller has just made, unless at is zero.
func (n *Node) coordinate(req *transport.Request, resp *transport.Response, at time.Time) (*transport.Response, entry, bool) {
	n.stats.local.Add(1)
	if req.Op == transport.OpSet && req.Flags&(transport.FlagIfAbsent|transport.FlagIfPresent|transport.FlagKeepTTL|transport.FlagGetOld) == 0 {
		// The common case needs no read of the old state.
		var version uint64
		if at.IsZero() {
			version = n.clock.Now()
		} else {
			version = n.clock.At(at)
		}
		// Checked after the version is taken: a process stopped in between
		// refuses the write on waking, and one stopped after the check
		// stores a version older than anything written meanwhile.
		if err := n.pastDeadline(req); err != nil {
			return errResponse(err), entry{}, false
		}
		e := entry{Value: req.Value, ExpireAt: expiryFromTTL(req.TTL), Version: version}
		// IfNewer: the version was taken before the key's lock, so a
		// concurrent SET of the key with a later version may have been
		// stored first. It wins here as it does on the replicas (which
		// apply only newer versions), instead of the primary keeping the
		// older value while the replicas keep the newer.
		res, err := n.store.SetWith(req.Key, req.Value, store.SetOptions{ExpireAt: e.ExpireAt, Version: e.Version, IfNewer: true})
		if err != nil {
			return errResponse(storeError(err)), entry{}, false
		}
		resp.Int, resp.Version = 1, e.Version
		if !res.Stored {
			return resp, entry{}, false // overwritten already: the replicas have the newer copy
		}
		return resp, e, true
	}

	var incr *big.Float
	if req.Op == transport.OpIncrFloat {
		// Parsed before the key's lock is taken (a long number takes a
		// while), and checked first, as Redis does.
		var ok bool
		if incr, ok = parseLongDouble(req.Value); !ok {
			return errResponse(transport.ErrNotFloat), entry{}, false
		}
	}
	var (
		opErr   error
		now     = time.Now().UnixNano()
		version uint64
	)
	stored, wrote, err := n.store.Update(req.Key, func(cur entry, found bool) (entry, bool) {
		// The version is taken under the key's lock, so it is newer than
		// whatever is stored (which was issued or observed before).
		version = n.clock.Now()
		if opErr = n.pastDeadline(req); opErr != nil {
			return entry{}, false // as for a plain SET, after the version is taken
		}
		live := found && !cur.Tombstone
		next := entry{Version: version}
		if live {
			next.Value, next.ExpireAt = cur.Value, cur.ExpireAt
		}
		switch req.Op {
		case transport.OpSet:
			if req.Flags&transport.FlagGetOld != 0 && live {
				resp.HasOld, resp.Value = true, append([]byte(nil), cur.Value...)
			}
			if (req.Flags&transport.FlagIfAbsent != 0 && live) || (req.Flags&transport.FlagIfPresent != 0 && !live) {
				return entry{}, false
			}
			next.Value = req.Value
			if req.Flags&transport.FlagKeepTTL == 0 || !live {
				next.ExpireAt = expiryFromTTL(req.TTL)
			}
			resp.Int = 1
		case transport.OpDelete, transport.OpGetDel:
			if !live {
				resp.Code = transport.CodeNotFound
				return entry{}, false
			}
			if req.Op == transport.OpGetDel {
				resp.Value = append([]byte(nil), cur.Value...)
			}
			resp.Int = 1
			return n.tombstone(version, now), true
		case transport.OpExpire:
			if !live {
				return entry{}, false
			}
			resp.Int = 1
			switch {
			case req.Flags&transport.FlagPersist != 0:
				if cur.ExpireAt == 0 {
					resp.Int = 0 // PERSIST on a key without a TTL changes nothing
					return entry{}, false
				}
				next.ExpireAt = 0
			case req.TTL <= 0: // an expiry in the past deletes, as in Redis
				return n.tombstone(version, now), true
			default:
				next.ExpireAt = expiryFromTTL(req.TTL)
			}
		case transport.OpGetEx:
			if !live {
				resp.Code = transport.CodeNotFound
				return entry{}, false
			}
			resp.Value = append([]byte(nil), cur.Value...)
			if req.Flags&transport.FlagPersist != 0 {
				next.ExpireAt = 0
			} else {
				next.ExpireAt = expiryFromTTL(req.TTL)
			}
		case transport.OpIncr:
			var v int64
			if live {
				var ok bool
				if v, ok = parseInteger(cur.Value); !ok {
					opErr = transport.ErrNotInteger
					return entry{}, false
				}
			}
			if (req.Delta > 0 && v > maxInt64-req.Delta) || (req.Delta < 0 && v < minInt64-req.Delta) {
				opErr = transport.ErrOverflow
				return entry{}, false
			}
			v += req.Delta
			resp.Int = v
			next.Value = strconv.AppendInt(nil, v, 10)
		case transport.OpIncrFloat:
			var v []byte
			if live {
				v = cur.Value
			}
			sum, err := incrFloat(v, incr)
			if err != nil {
				opErr = err
				return entry{}, false
			}
			resp.Value = sum
			next.Value = sum
		case transport.OpAppend:
			next.Value = append(append(make([]byte, 0, len(next.Value)+len(req.Value)), next.Value...), req.Value...)
			resp.Int = int64(len(next.Value))
		default:
			opErr = fmt.Errorf("%w: %s is not a write", transport.ErrBadRequest, req.Op)
			return entry{}, false
		}
		return next, true
	})
	switch {
	case err != nil:
		return errResponse(storeError(err)), entry{}, false
	case opErr != nil:
		return errResponse(opErr), entry{}, false
	case resp.Code != transport.CodeOK:
		return resp, entry{}, false
	}
	if wrote {
		resp.Version = stored.Version
	}
	if req.Op == transport.OpGetEx {
		resp.TTL = remainingMillis(stored.ExpireAt)
	}
	return resp, stored, wrote
}

// maxTTLMillis bounds TTLs so that an expiry always fits in Unix
// nanoseconds.
const maxTTLMillis = 100 * 365 * 24 * 3600 * 1000

const (
	maxInt64 = 1<<63 - 1
	minInt64 = -1 << 63
)

// parseInteger accepts exactly what Redis's INCR accepts: a base-10 64-bit
// integer in canonical form (no sign but '-', no leading zeros, no spaces).
func parseInteger(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, false
	}
	var buf [20]byte
	return v, string(strconv.AppendInt(buf[:0], v, 10)) == string(b)
}

// tombstone is the state a deletion leaves: it carries the deletion's
// version so an older copy arriving later cannot bring the key back, and
// is forgotten after TombstoneTTL.
func (n *Node) tombstone(version uint64, now int64) entry {
	return entry{Tombstone: true, Version: version, ExpireAt: now + int64(n.cfg.TombstoneTTL)}
}

// applyReplica stores a copy sent by a key's coordinator, a hint or a
// hand-off, if it is newer than what this node holds: last writer wins.
func (n *Node) applyReplica(req *transport.Request) *transport.Response {
	if req.Version == 0 {
		return errResponse(fmt.Errorf("%w: replicate needs a version", transport.ErrBadRequest))
	}
	if n.leaving.Load() {
		// A peer whose ring still has us would hand keys back to a node
		// that is about to go: refuse, so the peer keeps its copy.
		return errResponse(fmt.Errorf("%w: %s", transport.ErrUnavailable, refusedLeaving))
	}
	if hlc.Time(req.Version).After(time.Now().Add(maxClockSkew)) {
		// A version far in the future would make the key impossible to
		// overwrite: refuse it rather than let one bad clock pin a key.
		return errResponse(fmt.Errorf("%w: version is %v in the future", transport.ErrBadRequest,
			time.Until(hlc.Time(req.Version)).Round(time.Second)))
	}
	n.clock.Observe(req.Version)
	in := entry{Value: req.Value, ExpireAt: req.ExpireAt, Version: req.Version, Tombstone: req.Flags&transport.FlagTombstone != 0}
	if in.Tombstone {
		in.Value = nil
	}
	wrote, err := n.store.UpdateNoCopy(req.Key, func(cur entry, found bool) (entry, bool) {
		if found && cur.Version >= in.Version {
			return entry{}, false
		}
		return in, true
	})
	if err != nil {
		return errResponse(storeError(err))
	}
	var buf [maxReplicas]string
	if wrote && !slices.Contains(n.view.Load().ring.AppendOwners(buf[:0], req.Key, n.cfg.Replicas), n.cfg.Name) {
		// Sent by a peer whose ring is behind ours: a stray copy that the
		// next rebalance pass hands to the owners and drops.
		n.misplaced.Store(true)
	}
	return boolResponse(wrote)
}

// maxClockSkew bounds how far ahead of this node's clock a replicated
// version may be.
const maxClockSkew = time.Minute

// refusedLeaving ends the error text of a copy refused by a node that is
// leaving; isLeavingRefusal recognises it (see handOffRemaining).
const refusedLeaving = "node is leaving"

// isLeavingRefusal reports whether r refused a copy because its node is
// leaving.
func isLeavingRefusal(r *transport.Response) bool {
	return r != nil && r.Code == transport.CodeUnavailable && strings.HasSuffix(r.Err, refusedLeaving)
}

// replicaRequest is the OpReplicate that carries e to another node.
func replicaRequest(key string, e entry) transport.Request {
	r := transport.Request{Op: transport.OpReplicate, Key: key, Value: e.Value, ExpireAt: e.ExpireAt, Version: e.Version}
	if e.Tombstone {
		r.Flags |= transport.FlagTombstone
		r.Value = nil
	}
	return r
}

// pastDeadline refuses a write whose sender's deadline (Request.Deadline,
// plus the transport's MaxClockSkew) has passed by the time its version is
// taken: the sender has given up on it, and may since have written the key
// again elsewhere, so applying it now with a fresh version would overwrite
// a newer, acknowledged value. The transport refuses such requests when it
// reads them; this catches the ones read in time and applied late, by a
// process that was stopped in between. Writes without a deadline (RESP's)
// cost nothing here.
func (n *Node) pastDeadline(req *transport.Request) error {
	skew := n.cfg.Transport.MaxClockSkew
	if req.Deadline == 0 || skew < 0 {
		return nil
	}
	if late := time.Now().UnixMilli() - req.Deadline; late > skew.Milliseconds() {
		return fmt.Errorf("%w: write would be applied %dms after its sender's deadline; not executed", transport.ErrUnavailable, late)
	}
	return nil
}

// holds reports whether this node has any state for key, a tombstone
// included: a deleted key must not be fetched back from a previous owner.
func (n *Node) holds(key string) bool {
	_, ok := n.store.Version(key)
	return ok
}

// checkKey rejects what no node would store before spending a network hop
// on it.
func (n *Node) checkKey(req *transport.Request) error {
	if len(req.Key) > n.cfg.Store.MaxKeySize {
		return fmt.Errorf("%w: key is %d bytes, limit %d", transport.ErrTooLarge, len(req.Key), n.cfg.Store.MaxKeySize)
	}
	if (req.Op == transport.OpSet || req.Op == transport.OpAppend) && len(req.Value) > n.cfg.Store.MaxValueSize {
		return fmt.Errorf("%w: value is %d bytes, limit %d", transport.ErrTooLarge, len(req.Value), n.cfg.Store.MaxValueSize)
	}
	if req.TTL < 0 && req.Op != transport.OpExpire {
		return fmt.Errorf("%w: negative TTL", transport.ErrBadRequest)
	}
	if req.TTL > maxTTLMillis {
		return fmt.Errorf("%w: invalid expire time: TTL over 100 years", transport.ErrBadRequest)
	}
	return nil
}

// Stats returns this node's counters.
func (n *Node) Stats() transport.Stats {
	s := n.store.Stats()
	return transport.Stats{
		Entries:     s.Entries,
		Bytes:       s.Bytes,
		MaxMemory:   s.MaxMemory,
		Hits:        s.Hits,
		Misses:      s.Misses,
		Evictions:   s.Evictions,
		Expirations: s.Expirations,
		Forwarded:   n.stats.forwarded.Load(),
		Local:       n.stats.local.Load(),

		Replicated:      n.stats.replicated.Load(),
		FallbackHits:    n.stats.fallbackHits.Load(),
		KeysMoved:       n.stats.keysMoved.Load(),
		BytesMoved:      n.stats.bytesMoved.Load(),
		HandoffMillis:   time.Duration(n.stats.lastHandoff.Load()).Milliseconds(),
		UnderReplicated: int64(n.hints.pending()),
	}
}

// expiryFromTTL converts a TTL in milliseconds into the store's absolute
// expiry in Unix nanoseconds; 0 means none.
func expiryFromTTL(ttlMillis int64) int64 {
	if ttlMillis <= 0 {
		return 0
	}
	return time.Now().Add(time.Duration(ttlMillis) * time.Millisecond).UnixNano()
}

// remainingMillis converts an absolute expiry back into the remaining TTL,
// rounded up so a live key never reports 0 (which means "no expiry").
func remainingMillis(expireAt int64) int64 {
	if expireAt == 0 {
		return 0
	}
	left := expireAt - time.Now().UnixNano()
	if left <= 0 {
		return 1
	}
	return (left + int64(time.Millisecond) - 1) / int64(time.Millisecond)
}

// storeError maps the store's errors onto the wire's sentinel errors.
func storeError(err error) error {
	switch {
	case errors.Is(err, store.ErrTooLarge):
		return fmt.Errorf("%w: %w", transport.ErrTooLarge, err)
	case errors.Is(err, store.ErrNotInteger):
		return transport.ErrNotInteger
	case errors.Is(err, store.ErrOverflow):
		return transport.ErrOverflow
	}
	return err
}
