package resp

import (
	"math"
	"strings"

	"github.com/starlingcache/starling/transport"
)

// command describes one Redis command: how it is checked, how it becomes
// requests and what COMMAND reports about it.
type command struct {
	// name is lower case, as Redis reports it.
	name string
	// arity follows Redis: n > 0 means exactly n arguments (the name
	// included), n < 0 at least -n.
	arity int
	// flags, firstKey, lastKey and step are reported by COMMAND.
	flags                   []string
	firstKey, lastKey, step int
	// noAuth commands run before the client has authenticated.
	noAuth bool
	// prepare queues the command's requests (or a reply known at once) in
	// the current batch.
	prepare func(c *conn, args [][]byte)
	// exec, when set instead of prepare, runs the command on its own once
	// the batch ahead of it has been answered, writing its reply directly.
	exec func(c *conn, args [][]byte)
}

// Redis error texts that several commands share.
const (
	errSyntax      = "ERR syntax error"
	errNotInteger  = "ERR value is not an integer or out of range"
	errNoAuth      = "NOAUTH Authentication required."
	errWrongPass   = "WRONGPASS invalid username-password pair or user is disabled."
	errDBOutRange  = "ERR DB index is out of range"
	errDecOverflow = "ERR decrement would overflow"
)

// commandTable builds the command lookup table (keyed by lower-case name)
// and the same commands in a fixed order.
func commandTable() (map[string]*command, []*command) {
	read := []string{"readonly", "fast"}
	write := []string{"write", "denyoom", "fast"}
	del := []string{"write", "fast"}
	conn := []string{"fast", "noscript", "loading", "stale"}
	list := []*command{
		{name: "get", arity: 2, flags: read, firstKey: 1, lastKey: 1, step: 1, prepare: cmdGet},
		{name: "set", arity: -3, flags: write, firstKey: 1, lastKey: 1, step: 1, prepare: cmdSet},
		{name: "setnx", arity: 3, flags: write, firstKey: 1, lastKey: 1, step: 1, prepare: cmdSetNX},
		{name: "setex", arity: 4, flags: write, firstKey: 1, lastKey: 1, step: 1, prepare: cmdSetEX(true, "setex")},
		{name: "psetex", arity: 4, flags: write, firstKey: 1, lastKey: 1, step: 1, prepare: cmdSetEX(false, "psetex")},
		{name: "getdel", arity: 2, flags: del, firstKey: 1, lastKey: 1, step: 1, prepare: cmdGetDel},
		{name: "getset", arity: 3, flags: write, firstKey: 1, lastKey: 1, step: 1, prepare: cmdGetSet},
		{name: "getex", arity: -2, flags: del, firstKey: 1, lastKey: 1, step: 1, prepare: cmdGetEx},
		{name: "mget", arity: -2, flags: read, firstKey: 1, lastKey: -1, step: 1, prepare: cmdMGet},
		{name: "mset", arity: -3, flags: write, firstKey: 1, lastKey: -1, step: 2, prepare: cmdMSet},
		{name: "msetnx", arity: -3, flags: write, firstKey: 1, lastKey: -1, step: 2, exec: execMSetNX},
		{name: "del", arity: -2, flags: []string{"write"}, firstKey: 1, lastKey: -1, step: 1, prepare: cmdDel},
		{name: "unlink", arity: -2, flags: del, firstKey: 1, lastKey: -1, step: 1, prepare: cmdDel},
		{name: "exists", arity: -2, flags: read, firstKey: 1, lastKey: -1, step: 1, prepare: cmdExists},
		{name: "expire", arity: -3, flags: del, firstKey: 1, lastKey: 1, step: 1, prepare: cmdExpire(true, false)},
		{name: "pexpire", arity: -3, flags: del, firstKey: 1, lastKey: 1, step: 1, prepare: cmdExpire(false, false)},
		{name: "expireat", arity: -3, flags: del, firstKey: 1, lastKey: 1, step: 1, prepare: cmdExpire(true, true)},
		{name: "pexpireat", arity: -3, flags: del, firstKey: 1, lastKey: 1, step: 1, prepare: cmdExpire(false, true)},
		{name: "ttl", arity: 2, flags: read, firstKey: 1, lastKey: 1, step: 1, prepare: cmdTTL(false)},
		{name: "pttl", arity: 2, flags: read, firstKey: 1, lastKey: 1, step: 1, prepare: cmdTTL(true)},
		{name: "persist", arity: 2, flags: del, firstKey: 1, lastKey: 1, step: 1, prepare: cmdPersist},
		{name: "incr", arity: 2, flags: write, firstKey: 1, lastKey: 1, step: 1, prepare: cmdIncr(1)},
		{name: "decr", arity: 2, flags: write, firstKey: 1, lastKey: 1, step: 1, prepare: cmdIncr(-1)},
		{name: "incrby", arity: 3, flags: write, firstKey: 1, lastKey: 1, step: 1, prepare: cmdIncrBy(false)},
		{name: "decrby", arity: 3, flags: write, firstKey: 1, lastKey: 1, step: 1, prepare: cmdIncrBy(true)},
		{name: "incrbyfloat", arity: 3, flags: write, firstKey: 1, lastKey: 1, step: 1, prepare: cmdIncrByFloat},
		{name: "append", arity: 3, flags: write, firstKey: 1, lastKey: 1, step: 1, prepare: cmdAppend},
		{name: "strlen", arity: 2, flags: read, firstKey: 1, lastKey: 1, step: 1, prepare: cmdStrlen},
		{name: "getrange", arity: 4, flags: read, firstKey: 1, lastKey: 1, step: 1, prepare: cmdGetRange},
		{name: "substr", arity: 4, flags: read, firstKey: 1, lastKey: 1, step: 1, prepare: cmdGetRange},
		{name: "type", arity: 2, flags: read, firstKey: 1, lastKey: 1, step: 1, prepare: cmdType},
		{name: "dbsize", arity: 1, flags: []string{"readonly"}, exec: execDBSize},
		{name: "scan", arity: -2, flags: []string{"readonly"}, exec: execScan},
		{name: "keys", arity: 2, flags: []string{"readonly"}, exec: execKeys},
		{name: "flushall", arity: -1, flags: []string{"write"}, exec: execFlushAll},
		{name: "flushdb", arity: -1, flags: []string{"write"}, exec: execFlushAll},
		{name: "info", arity: -1, flags: []string{"loading", "stale"}, exec: execInfo},
		{name: "ping", arity: -1, flags: []string{"fast"}, prepare: cmdPing},
		{name: "echo", arity: 2, flags: []string{"fast"}, prepare: cmdEcho},
		{name: "quit", arity: -1, flags: []string{"fast", "noscript", "loading", "stale", "no_auth"}, noAuth: true, exec: execQuit},
		{name: "select", arity: 2, flags: conn, prepare: cmdSelect},
		{name: "hello", arity: -1, flags: []string{"fast", "noscript", "loading", "stale", "no_auth"}, noAuth: true, exec: execHello},
		{name: "auth", arity: -2, flags: []string{"fast", "noscript", "loading", "stale", "no_auth"}, noAuth: true, prepare: cmdAuth},
		{name: "client", arity: -2, flags: conn, prepare: cmdClient},
		{name: "command", arity: -1, flags: []string{"loading", "stale"}, prepare: cmdCommand},
		{name: "config", arity: -2, flags: []string{"loading", "stale"}, prepare: cmdConfig},
	}
	m := make(map[string]*command, len(list))
	for _, c := range list {
		m[c.name] = c
	}
	return m, list
}

// unknownCommand is Redis's error for a command it does not know, quoting
// the first arguments.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.Write(truncate(args[0], 128))
	b.WriteString("', with args beginning with: ")
	n := 0
	for _, a := range args[1:] {
		if n >= 128 {
			break
		}
		a = truncate(a, 128-n)
		b.WriteByte('\'')
		b.Write(a)
		b.WriteString("' ")
		n += len(a) + 3
	}
	return b.String()
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func arityError(name string) string {
	return "ERR wrong number of arguments for '" + name + "' command"
}

// eqFold reports whether b equals the lower-case ASCII word s, ignoring
// case, without allocating.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// nowMillis is the server clock in Unix milliseconds.
func (c *conn) nowMillis() int64 { return c.s.now().UnixMilli() }

// relativeTTL turns an expiry given in a command (seconds or milliseconds,
// relative or absolute) into milliseconds from now; a result <= 0 means the
// time has already passed. ok is false if the value overflows, which Redis
// reports as an invalid expire time.
func (c *conn) relativeTTL(v int64, seconds, absolute bool) (ttl int64, ok bool) {
	if seconds {
		if v > math.MaxInt64/1000 || v < math.MinInt64/1000 {
			return 0, false
		}
		v *= 1000
	}
	now := c.nowMillis()
	if !absolute {
		if v > math.MaxInt64-now {
			return 0, false
		}
		return v, true
	}
	if v < math.MinInt64+now {
		return -1, true
	}
	return v - now, true
}

// GET key

func cmdGet(c *conn, args [][]byte) {
	first := len(c.reqs)
	c.newReq(transport.OpGet, args[1])
	c.await(first, replyBulk, 0)
}

// replyBulk answers with the value, or a null for a missing key.
func replyBulk(c *conn, _ *pending, rs []*transport.Response) {
	switch r := rs[0]; r.Code {
	case transport.CodeOK:
		c.wr.bulk(r.Value)
	case transport.CodeNotFound:
		c.wr.null()
	default:
		c.backendError(r)
	}
}

// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms-ts|KEEPTTL]

// Option bits of SET and GETEX.
const (
	optNX = 1 << iota
	optXX
	optGet
	optKeepTTL
	optPersist
	optEX
	optPX
	optEXAT
	optPXAT

	optExpire = optEX | optPX | optEXAT | optPXAT
)

// parseStringOptions parses the options of SET (forSet) or GETEX with
// Redis's rules: conflicting options are a syntax error, a repeated one is
// not (the last expiry wins). expire is the expiry option's argument.
func parseStringOptions(opts [][]byte, forSet bool) (flags int, expire []byte, errMsg string) {
	for j := 0; j < len(opts); j++ {
		o := opts[j]
		switch {
		case forSet && eqFold(o, "nx") && flags&optXX == 0:
			flags |= optNX
		case forSet && eqFold(o, "xx") && flags&optNX == 0:
			flags |= optXX
		case forSet && eqFold(o, "get"):
			flags |= optGet
		case forSet && eqFold(o, "keepttl") && flags&(optPersist|optExpire) == 0:
			flags |= optKeepTTL
		case !forSet && eqFold(o, "persist") && flags&(optKeepTTL|optExpire) == 0:
			flags |= optPersist
		default:
			var f int
			switch {
			case eqFold(o, "ex"):
				f = optEX
			case eqFold(o, "px"):
				f = optPX
			case eqFold(o, "exat"):
				f = optEXAT
			case eqFold(o, "pxat"):
				f = optPXAT
			}
			if f == 0 || j+1 >= len(opts) || flags&(optKeepTTL|optPersist|optExpire&^f) != 0 {
				return 0, nil, errSyntax
			}
			flags |= f
			expire = opts[j+1]
			j++
		}
	}
	return flags, expire, ""
}

// expiryOption converts the argument of EX, PX, EXAT or PXAT (in flags)
// into a TTL from now, with Redis's checks and messages; ttl <= 0 means an
// absolute time already past.
func (c *conn) expiryOption(flags int, arg []byte, cmd string) (ttl int64, errMsg string) {
	v, ok := parseInt(arg)
	if !ok {
		return 0, errNotInteger
	}
	if v <= 0 {
		return 0, "ERR invalid expire time in '" + cmd + "' command"
	}
	ttl, ok = c.relativeTTL(v, flags&(optEX|optEXAT) != 0, flags&(optEXAT|optPXAT) != 0)
	if !ok {
		return 0, "ERR invalid expire time in '" + cmd + "' command"
	}
	return ttl, ""
}

func cmdSet(c *conn, args [][]byte) {
	flags, exp, msg := parseStringOptions(args[3:], true)
	if msg != "" {
		c.immError(msg)
		return
	}
	var ttl int64
	if flags&optExpire != 0 {
		if ttl, msg = c.expiryOption(flags, exp, "set"); msg != "" {
			c.immError(msg)
			return
		}
		if ttl <= 0 {
			c.setExpired(args[1], flags)
			return
		}
	}
	first := len(c.reqs)
	r := c.newReq(transport.OpSet, args[1])
	r.Value = args[2]
	r.TTL = ttl
	if flags&optNX != 0 {
		r.Flags |= transport.FlagIfAbsent
	}
	if flags&optXX != 0 {
		r.Flags |= transport.FlagIfPresent
	}
	if flags&optKeepTTL != 0 {
		r.Flags |= transport.FlagKeepTTL
	}
	switch {
	case flags&optGet != 0:
		r.Flags |= transport.FlagGetOld
		c.await(first, replySetGet, 0)
	case flags&(optNX|optXX) != 0:
		c.await(first, replySetCond, 0)
	default:
		c.await(first, replyOK, 0)
	}
}

// setExpired runs a SET whose EXAT/PXAT lies in the past: the value would
// expire at once, so the outcome is what SET then an immediate expiry would
// leave behind and reply.
func (c *conn) setExpired(key []byte, flags int) {
	first := len(c.reqs)
	get, nx, xx := flags&optGet != 0, flags&optNX != 0, flags&optXX != 0
	switch {
	case get && nx: // unchanged either way; reply the current value
		c.newReq(transport.OpGet, key)
		c.await(first, replyBulk, 0)
	case get: // would replace an existing value, then expire it
		c.newReq(transport.OpGetDel, key)
		c.await(first, replyBulk, 0)
	case nx:
		c.newReq(transport.OpExists, key)
		c.await(first, replyNXExpired, 0)
	case xx:
		c.newReq(transport.OpDelete, key)
		c.await(first, replyDeletedOrNull, 0)
	default:
		c.newReq(transport.OpDelete, key)
		c.await(first, replyOKIgnoreMissing, 0)
	}
}

// replySetGet answers SET ... GET with the previous value.
func replySetGet(c *conn, _ *pending, rs []*transport.Response) {
	r := rs[0]
	switch {
	case r.Code != transport.CodeOK:
		c.backendError(r)
	case r.HasOld:
		c.wr.bulk(r.Value)
	default:
		c.wr.null()
	}
}

// replySetCond answers SET NX/XX: OK if stored, else null.
func replySetCond(c *conn, _ *pending, rs []*transport.Response) {
	r := rs[0]
	switch {
	case r.Code != transport.CodeOK:
		c.backendError(r)
	case r.Int == 1:
		c.wr.ok()
	default:
		c.wr.null()
	}
}

// replyOK answers OK when every request succeeded (SET, MSET), else with
// the first error.
func replyOK(c *conn, _ *pending, rs []*transport.Response) {
	for _, r := range rs {
		if r.Code != transport.CodeOK {
			c.backendError(r)
			return
		}
	}
	c.wr.ok()
}

func replyOKIgnoreMissing(c *conn, _ *pending, rs []*transport.Response) {
	if r := rs[0]; r.Code != transport.CodeOK && r.Code != transport.CodeNotFound {
		c.backendError(r)
		return
	}
	c.wr.ok()
}

// replyNXExpired answers SET NX with a past expiry: null if the key
// exists (nothing would be set), OK otherwise (set, and gone at once).
func replyNXExpired(c *conn, _ *pending, rs []*transport.Response) {
	r := rs[0]
	switch {
	case r.Code != transport.CodeOK:
		c.backendError(r)
	case r.Int == 1:
		c.wr.null()
	default:
		c.wr.ok()
	}
}

func replyDeletedOrNull(c *conn, _ *pending, rs []*transport.Response) {
	switch r := rs[0]; r.Code {
	case transport.CodeOK:
		c.wr.ok()
	case transport.CodeNotFound:
		c.wr.null()
	default:
		c.backendError(r)
	}
}

// replyInt answers with the response's Int (SETNX, INCR, APPEND).
func replyInt(c *conn, _ *pending, rs []*transport.Response) {
	if r := rs[0]; r.Code != transport.CodeOK {
		c.backendError(r)
		return
	}
	c.wr.int(rs[0].Int)
}

// SETNX key value

func cmdSetNX(c *conn, args [][]byte) {
	first := len(c.reqs)
	r := c.newReq(transport.OpSet, args[1])
	r.Value = args[2]
	r.Flags = transport.FlagIfAbsent
	c.await(first, replyInt, 0)
}

// SETEX key seconds value, PSETEX key milliseconds value

func cmdSetEX(seconds bool, name string) func(c *conn, args [][]byte) {
	flags := optPX
	if seconds {
		flags = optEX
	}
	return func(c *conn, args [][]byte) {
		ttl, msg := c.expiryOption(flags, args[2], name)
		if msg != "" {
			c.immError(msg)
			return
		}
		first := len(c.reqs)
		r := c.newReq(transport.OpSet, args[1])
		r.Value = args[3]
		r.TTL = ttl
		c.await(first, replyOK, 0)
	}
}

// GETDEL key

func cmdGetDel(c *conn, args [][]byte) {
	first := len(c.reqs)
	c.newReq(transport.OpGetDel, args[1])
	c.await(first, replyBulk, 0)
}

// GETSET key value: SET key value GET, which Redis deprecated it for but
// older clients still send. Like SET, it drops the key's expiry.

func cmdGetSet(c *conn, args [][]byte) {
	first := len(c.reqs)
	r := c.newReq(transport.OpSet, args[1])
	r.Value = args[2]
	r.Flags |= transport.FlagGetOld
	c.await(first, replySetGet, 0)
}

// GETEX key [EX s|PX ms|EXAT ts|PXAT ms-ts|PERSIST]

func cmdGetEx(c *conn, args [][]byte) {
	flags, exp, msg := parseStringOptions(args[2:], false)
	if msg != "" {
		c.immError(msg)
		return
	}
	var ttl int64
	if flags&optExpire != 0 {
		if ttl, msg = c.expiryOption(flags, exp, "getex"); msg != "" {
			c.immError(msg)
			return
		}
	}
	first := len(c.reqs)
	switch {
	case flags&optExpire != 0 && ttl <= 0:
		c.newReq(transport.OpGetDel, args[1])
	case flags&optExpire != 0:
		c.newReq(transport.OpGetEx, args[1]).TTL = ttl
	case flags&optPersist != 0:
		c.newReq(transport.OpGetEx, args[1]).Flags = transport.FlagPersist
	default:
		c.newReq(transport.OpGet, args[1])
	}
	c.await(first, replyBulk, 0)
}

// MGET key [key ...]

func cmdMGet(c *conn, args [][]byte) {
	first := len(c.reqs)
	for _, k := range args[1:] {
		c.newReq(transport.OpGet, k)
	}
	c.await(first, replyMGet, 0)
}

// replyMGet answers with an array of values and nulls. A key whose owner
// failed makes the whole reply that error: a null would pass an outage off
// as a cache miss.
func replyMGet(c *conn, _ *pending, rs []*transport.Response) {
	for _, r := range rs {
		if r.Code != transport.CodeOK && r.Code != transport.CodeNotFound {
			c.backendError(r)
			return
		}
	}
	c.wr.array(len(rs))
	for _, r := range rs {
		if r.Code == transport.CodeOK {
			c.wr.bulk(r.Value)
		} else {
			c.wr.null()
		}
	}
}

// MSET key value [key value ...]: every pair is sent to its owner; the
// pairs are not applied atomically across owners.

func cmdMSet(c *conn, args [][]byte) {
	if len(args)%2 == 0 {
		c.immError(arityError("mset"))
		return
	}
	first := len(c.reqs)
	for i := 1; i < len(args); i += 2 {
		c.newReq(transport.OpSet, args[i]).Value = args[i+1]
	}
	c.await(first, replyOK, 0)
}

// MSETNX key value [key value ...] sets the keys only if none of them
// exists. Unlike Redis it is not atomic: the keys live on different
// owners. It checks that every key is absent, then sets each one only if
// it is still absent, so it never overwrites a key; but a key created by
// another client between the check and the set makes the reply 0 while
// the other keys have been set.
func execMSetNX(c *conn, args [][]byte) {
	if len(args)%2 == 0 {
		c.wr.errorString(arityError("msetnx"))
		return
	}
	for i := 1; i < len(args); i += 2 {
		c.newReq(transport.OpExists, args[i])
	}
	rs := c.run()
	exists := false
	for _, r := range rs {
		if r.Code != transport.CodeOK {
			c.backendError(r)
			c.resetBatch()
			return
		}
		exists = exists || r.Int == 1
	}
	c.resetBatch()
	if exists {
		c.wr.int(0)
		return
	}
	for i := 1; i < len(args); i += 2 {
		r := c.newReq(transport.OpSet, args[i])
		r.Value = args[i+1]
		r.Flags = transport.FlagIfAbsent
	}
	rs = c.run()
	all := int64(1)
	for _, r := range rs {
		if r.Code != transport.CodeOK {
			c.backendError(r)
			c.resetBatch()
			return
		}
		if r.Int != 1 {
			all = 0
		}
	}
	c.resetBatch()
	c.wr.int(all)
}

// DEL key [key ...], UNLINK key [key ...]

func cmdDel(c *conn, args [][]byte) {
	first := len(c.reqs)
	for _, k := range args[1:] {
		c.newReq(transport.OpDelete, k)
	}
	c.await(first, replyDeleted, 0)
}

// replyDeleted answers with the number of keys that existed.
func replyDeleted(c *conn, _ *pending, rs []*transport.Response) {
	var n int64
	for _, r := range rs {
		switch r.Code {
		case transport.CodeOK:
			n++
		case transport.CodeNotFound:
		default:
			c.backendError(r)
			return
		}
	}
	c.wr.int(n)
}

// EXISTS key [key ...]

func cmdExists(c *conn, args [][]byte) {
	first := len(c.reqs)
	for _, k := range args[1:] {
		c.newReq(transport.OpExists, k)
	}
	c.await(first, replySum, 0)
}

// TYPE key: every value starling holds is a string, so "string" for a
// key that exists and "none" otherwise, as tools that browse keys expect.

func cmdType(c *conn, args [][]byte) {
	first := len(c.reqs)
	c.newReq(transport.OpExists, args[1])
	c.await(first, replyType, 0)
}

func replyType(c *conn, _ *pending, rs []*transport.Response) {
	switch r := rs[0]; {
	case r.Code != transport.CodeOK:
		c.backendError(r)
	case r.Int > 0:
		c.wr.simple("string")
	default:
		c.wr.simple("none")
	}
}

// replySum answers with the sum of the responses' Int.
func replySum(c *conn, _ *pending, rs []*transport.Response) {
	var n int64
	for _, r := range rs {
		if r.Code != transport.CodeOK {
			c.backendError(r)
			return
		}
		n += r.Int
	}
	c.wr.int(n)
}

// EXPIRE key seconds [NX|XX|GT|LT], PEXPIRE, EXPIREAT, PEXPIREAT

// Condition bits of EXPIRE's options.
const (
	expNX = 1 << iota
	expXX
	expGT
	expLT
)

func cmdExpire(seconds, absolute bool) func(c *conn, args [][]byte) {
	return func(c *conn, args [][]byte) {
		cond := 0
		for _, o := range args[3:] {
			switch {
			case eqFold(o, "nx"):
				cond |= expNX
			case eqFold(o, "xx"):
				cond |= expXX
			case eqFold(o, "gt"):
				cond |= expGT
			case eqFold(o, "lt"):
				cond |= expLT
			default:
				c.immError("ERR Unsupported option " + string(o))
				return
			}
		}
		if cond&expNX != 0 && cond&(expXX|expGT|expLT) != 0 {
			c.immError("ERR NX and XX, GT or LT options at the same time are not compatible")
			return
		}
		if cond&expGT != 0 && cond&expLT != 0 {
			c.immError("ERR GT and LT options at the same time are not compatible")
			return
		}
		v, ok := parseInt(args[2])
		if !ok {
			c.immError(errNotInteger)
			return
		}
		ttl, ok := c.relativeTTL(v, seconds, absolute)
		if !ok {
			c.immError("ERR invalid expire time in '" + strings.ToLower(string(args[0])) + "' command")
			return
		}
		if cond != 0 {
			// The condition needs the current TTL first: two round trips,
			// so the batch ahead is answered and this runs on its own. Not
			// atomic: another client may change the TTL in between.
			c.execute()
			c.expireIf(args[1], ttl, cond)
			return
		}
		c.queueExpire(args[1], ttl)
	}
}

// queueExpire queues setting key's TTL; a TTL <= 0 deletes the key, as
// Redis does for a time in the past.
func (c *conn) queueExpire(key []byte, ttl int64) {
	first := len(c.reqs)
	if ttl <= 0 {
		c.newReq(transport.OpDelete, key)
		c.await(first, replyDeletedBool, 0)
		return
	}
	c.newReq(transport.OpExpire, key).TTL = ttl
	c.await(first, replyExpire, 0)
}

// expireIf runs EXPIRE with NX, XX, GT or LT: read the TTL, check the
// condition, then set the TTL. A key without expiry counts as an infinite
// TTL for GT and LT, as in Redis.
func (c *conn) expireIf(key []byte, ttl int64, cond int) {
	c.newReq(transport.OpTTL, key)
	r := c.run()[0]
	code, cur := r.Code, r.TTL
	if code != transport.CodeOK && code != transport.CodeNotFound {
		c.backendError(r)
	}
	c.resetBatch()
	switch {
	case code == transport.CodeNotFound:
		c.wr.int(0)
	case code != transport.CodeOK:
	case cond&expNX != 0 && cur != 0,
		cond&expXX != 0 && cur == 0,
		cond&expGT != 0 && (cur == 0 || ttl <= cur),
		cond&expLT != 0 && cur != 0 && ttl >= cur:
		c.wr.int(0)
	default:
		c.queueExpire(key, ttl)
		p := c.pend[0]
		p.reply(c, &p, c.run())
		c.resetBatch()
	}
}

// replyExpire answers EXPIRE: 1 if the key exists (and its TTL was set).
func replyExpire(c *conn, _ *pending, rs []*transport.Response) {
	switch r := rs[0]; r.Code {
	case transport.CodeOK:
		c.wr.int(r.Int)
	case transport.CodeNotFound:
		c.wr.int(0)
	default:
		c.backendError(r)
	}
}

// replyDeletedBool answers 1 if the deleted key existed, else 0.
func replyDeletedBool(c *conn, _ *pending, rs []*transport.Response) {
	switch r := rs[0]; r.Code {
	case transport.CodeOK:
		c.wr.int(1)
	case transport.CodeNotFound:
		c.wr.int(0)
	default:
		c.backendError(r)
	}
}

// TTL key, PTTL key

func cmdTTL(millis bool) func(c *conn, args [][]byte) {
	var mode int64
	if millis {
		mode = 1
	}
	return func(c *conn, args [][]byte) {
		first := len(c.reqs)
		c.newReq(transport.OpTTL, args[1])
		c.await(first, replyTTL, mode)
	}
}

// replyTTL answers -2 for a missing key, -1 for one without expiry, else
// the TTL in milliseconds (mode 1) or rounded to seconds as Redis does.
func replyTTL(c *conn, p *pending, rs []*transport.Response) {
	r := rs[0]
	switch {
	case r.Code == transport.CodeNotFound:
		c.wr.int(-2)
	case r.Code != transport.CodeOK:
		c.backendError(r)
	case r.TTL <= 0:
		c.wr.int(-1)
	case p.mode == 1:
		c.wr.int(r.TTL)
	default:
		c.wr.int((r.TTL + 500) / 1000)
	}
}

// PERSIST key: 1 only if the key had an expiry that was removed. The TTL is
// read in the same batch, just before, because the persist response only
// says whether the key exists.

func cmdPersist(c *conn, args [][]byte) {
	first := len(c.reqs)
	c.newReq(transport.OpTTL, args[1])
	c.newReq(transport.OpExpire, args[1]).Flags = transport.FlagPersist
	c.await(first, replyPersist, 0)
}

func replyPersist(c *conn, _ *pending, rs []*transport.Response) {
	ttl, per := rs[0], rs[1]
	switch {
	case ttl.Code == transport.CodeNotFound || per.Code == transport.CodeNotFound:
		c.wr.int(0)
	case ttl.Code != transport.CodeOK:
		c.backendError(ttl)
	case per.Code != transport.CodeOK:
		c.backendError(per)
	case ttl.TTL > 0 && per.Int == 1:
		c.wr.int(1)
	default:
		c.wr.int(0)
	}
}

// INCR key, DECR key, INCRBY key n, DECRBY key n

func cmdIncr(delta int64) func(c *conn, args [][]byte) {
	return func(c *conn, args [][]byte) {
		first := len(c.reqs)
		c.newReq(transport.OpIncr, args[1]).Delta = delta
		c.await(first, replyInt, 0)
	}
}

func cmdIncrBy(negate bool) func(c *conn, args [][]byte) {
	return func(c *conn, args [][]byte) {
		d, ok := parseInt(args[2])
		if !ok {
			c.immError(errNotInteger)
			return
		}
		if negate {
			if d == math.MinInt64 {
				c.immError(errDecOverflow)
				return
			}
			d = -d
		}
		first := len(c.reqs)
		c.newReq(transport.OpIncr, args[1]).Delta = d
		c.await(first, replyInt, 0)
	}
}

// INCRBYFLOAT key increment: the key's owner parses and adds, as Redis
// does, and answers with the new value's text.

func cmdIncrByFloat(c *conn, args [][]byte) {
	first := len(c.reqs)
	c.newReq(transport.OpIncrFloat, args[1]).Value = args[2]
	c.await(first, replyBulk, 0)
}

// APPEND key value

func cmdAppend(c *conn, args [][]byte) {
	first := len(c.reqs)
	c.newReq(transport.OpAppend, args[1]).Value = args[2]
	c.await(first, replyInt, 0)
}

// STRLEN key (reads the value: there is no length-only operation).

func cmdStrlen(c *conn, args [][]byte) {
	first := len(c.reqs)
	c.newReq(transport.OpGet, args[1])
	c.await(first, replyStrlen, 0)
}

func replyStrlen(c *conn, _ *pending, rs []*transport.Response) {
	switch r := rs[0]; r.Code {
	case transport.CodeOK:
		c.wr.int(int64(len(r.Value)))
	case transport.CodeNotFound:
		c.wr.int(0)
	default:
		c.backendError(r)
	}
}

// GETRANGE key start end (and SUBSTR, its old name): the bytes of the
// value from start to end, both included, counted from the end when
// negative, clamped to the value; an empty string for a missing key.

func cmdGetRange(c *conn, args [][]byte) {
	start, ok := parseInt(args[2])
	end, ok2 := parseInt(args[3])
	if !ok || !ok2 {
		c.immError(errNotInteger)
		return
	}
	if start < 0 && end < 0 && start > end {
		from := len(c.imm.b)
		c.imm.bulk(nil)
		c.immEnd(from)
		return
	}
	// Both fit pending.mode as 32 bits each: no value is 2 GiB long, so
	// clamping changes no answer.
	first := len(c.reqs)
	c.newReq(transport.OpGet, args[1])
	c.await(first, replyGetRange, int64(clamp32(start))<<32|int64(uint32(clamp32(end))))
}

func clamp32(v int64) int32 { return int32(max(min(v, math.MaxInt32), math.MinInt32)) }

func replyGetRange(c *conn, p *pending, rs []*transport.Response) {
	switch r := rs[0]; r.Code {
	case transport.CodeOK, transport.CodeNotFound:
		c.wr.bulk(valueRange(r.Value, int64(int32(p.mode>>32)), int64(int32(p.mode))))
	default:
		c.backendError(r)
	}
}

// valueRange is v[start:end+1] with Redis's GETRANGE rules for negative
// and out-of-range indexes.
func valueRange(v []byte, start, end int64) []byte {
	n := int64(len(v))
	if start < 0 {
		start = max(n+start, 0)
	}
	if end < 0 {
		end = max(n+end, 0)
	}
	end = min(end, n-1)
	if start > end || n == 0 {
		return nil
	}
	return v[start : end+1]
}
