package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/starlingcache/starling/node/store"
	"github.com/starlingcache/starling/transport"
)

var _ transport.Handler = (*Node)(nil)

// ServeRequest implements transport.Handler. Requests this node can answer
// from its own store are answered inline on the connection's read loop;
// requests for another owner are forwarded from a goroutine so that a slow
// or dead owner never stalls the other requests pipelined on the connection.
func (n *Node) ServeRequest(ctx context.Context, req *transport.Request, w transport.ResponseWriter) {
	addr, local, resp := n.route(req)
	if local {
		resp = n.serveLocal(req)
	}
	if resp != nil {
		resp.ID = req.ID
		w.Reply(resp)
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		resp := n.forward(n.ctx, addr, req)
		resp.ID = req.ID
		w.Reply(resp)
	}()
}

// Do routes one request exactly as if it had arrived on the wire: it is
// answered locally or forwarded to the key's owner. Embedding programs and
// protocol front ends (RESP) call it.
func (n *Node) Do(ctx context.Context, req *transport.Request) *transport.Response {
	addr, local, resp := n.route(req)
	if local {
		return n.serveLocal(req)
	}
	if resp != nil {
		return resp
	}
	return n.forward(ctx, addr, req)
}

// route decides where req is served: locally (local is true), by forwarding
// to addr, or not at all (resp holds the error to return).
func (n *Node) route(req *transport.Request) (addr string, local bool, resp *transport.Response) {
	switch req.Op {
	case transport.OpGet, transport.OpSet, transport.OpDelete:
	default:
		// Operations about the node itself, or unknown ones, are answered here.
		return "", true, nil
	}
	if err := n.checkKey(req); err != nil {
		return "", false, errResponse(err)
	}
	if req.Flags&transport.FlagForwarded != 0 {
		// Never route a forwarded request again: if our ring disagrees with
		// the sender's, serving it here is still better than a loop.
		return "", true, nil
	}
	v := n.view.Load()
	owner := v.ring.Owner(req.Key)
	if owner == "" || owner == n.cfg.Name {
		return "", true, nil
	}
	addr, ok := v.addrs[owner]
	if !ok {
		return "", false, errResponse(fmt.Errorf("%w: no address known for owner %s", transport.ErrUnavailable, owner))
	}
	return addr, false, nil
}

// checkKey rejects what no node would store before spending a network hop
// on it.
func (n *Node) checkKey(req *transport.Request) error {
	if req.Key == "" {
		return fmt.Errorf("%w: empty key", transport.ErrBadRequest)
	}
	if len(req.Key) > n.cfg.Store.MaxKeySize {
		return fmt.Errorf("%w: key is %d bytes, limit %d", transport.ErrTooLarge, len(req.Key), n.cfg.Store.MaxKeySize)
	}
	if req.Op == transport.OpSet && len(req.Value) > n.cfg.Store.MaxValueSize {
		return fmt.Errorf("%w: value is %d bytes, limit %d", transport.ErrTooLarge, len(req.Value), n.cfg.Store.MaxValueSize)
	}
	if req.TTL < 0 {
		return fmt.Errorf("%w: negative TTL", transport.ErrBadRequest)
	}
	return nil
}

// forward sends req to the owner at addr, marked so the owner serves it
// itself, and turns transport failures into an error response naming the
// owner.
func (n *Node) forward(ctx context.Context, addr string, req *transport.Request) *transport.Response {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ForwardTimeout)
	defer cancel()
	fwd := *req
	fwd.ID = 0
	fwd.Flags |= transport.FlagForwarded
	resp, err := n.client.Call(ctx, addr, &fwd)
	if err != nil {
		n.log.Debug("forward failed", "op", req.Op.String(), "owner_addr", addr, "err", err)
		return errResponse(fmt.Errorf("%w: owner %s: %w", transport.ErrUnavailable, addr, err))
	}
	return resp
}

// serveLocal answers req from this node's own store.
func (n *Node) serveLocal(req *transport.Request) *transport.Response {
	switch req.Op {
	case transport.OpPing:
		return &transport.Response{}
	case transport.OpMembers:
		return &transport.Response{Members: n.Members()}
	case transport.OpGet:
		val, expireAt, ok := n.store.Get(req.Key)
		if !ok {
			return &transport.Response{Code: transport.CodeNotFound}
		}
		return &transport.Response{Value: val, TTL: remainingMillis(expireAt)}
	case transport.OpSet:
		if err := n.store.Set(req.Key, req.Value, expiryFromTTL(req.TTL)); err != nil {
			return errResponse(storeError(err))
		}
		return &transport.Response{}
	case transport.OpDelete:
		if !n.store.Delete(req.Key) {
			return &transport.Response{Code: transport.CodeNotFound}
		}
		return &transport.Response{}
	}
	return errResponse(fmt.Errorf("%w: %s", transport.ErrUnknownOp, req.Op))
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
	if errors.Is(err, store.ErrTooLarge) {
		return fmt.Errorf("%w: %w", transport.ErrTooLarge, err)
	}
	return err
}

func errResponse(err error) *transport.Response {
	return &transport.Response{Code: transport.CodeOf(err), Err: err.Error()}
}
