package resp

import (
	"cmp"
	"crypto/subtle"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/starlingcache/starling/transport"
)

// redisCompatVersion is the Redis version starling reports as
// redis_version (INFO) and version (HELLO). Clients and exporters parse it
// to decide which commands and reply shapes to expect; starling's own
// version is reported separately.
const redisCompatVersion = "7.2.0"

// PING [message]

func cmdPing(c *conn, args [][]byte) {
	if len(args) > 2 {
		c.immError(arityError("ping"))
		return
	}
	from := len(c.imm.b)
	if len(args) == 2 {
		c.imm.bulk(args[1])
	} else {
		c.imm.simple("PONG")
	}
	c.immEnd(from)
}

// ECHO message

func cmdEcho(c *conn, args [][]byte) {
	from := len(c.imm.b)
	c.imm.bulk(args[1])
	c.immEnd(from)
}

// QUIT: reply OK and close once the reply is written.

func execQuit(c *conn, _ [][]byte) {
	c.wr.ok()
	c.quit = true
}

// SELECT index: starling has database 0 only.

func cmdSelect(c *conn, args [][]byte) {
	n, ok := parseInt(args[1])
	switch {
	case !ok:
		c.immError(errNotInteger)
	case n != 0:
		c.immError(errDBOutRange)
	default:
		c.immOK()
	}
}

// AUTH [username] password

func cmdAuth(c *conn, args [][]byte) {
	if len(args) > 3 {
		c.immError(errSyntax)
		return
	}
	user, pass := []byte("default"), args[1]
	if len(args) == 3 {
		user, pass = args[1], args[2]
	}
	if c.s.cfg.RequirePass == "" && len(args) == 2 {
		c.immError("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		return
	}
	if !c.checkPassword(user, pass) {
		c.immError(errWrongPass)
		return
	}
	c.immOK()
}

// checkPassword authenticates the connection if user is "default" and pass
// is the configured password (any password when none is configured, as for
// Redis's nopass default user).
func (c *conn) checkPassword(user, pass []byte) bool {
	ok := string(user) == "default"
	if want := c.s.cfg.RequirePass; want != "" {
		ok = subtle.ConstantTimeCompare(pass, []byte(want)) == 1 && ok
	}
	if ok {
		c.authed = true
		c.rd.unauth = false
	}
	return ok
}

// HELLO [protover [AUTH username password] [SETNAME clientname]]

func execHello(c *conn, args [][]byte) {
	proto := c.wr.proto
	if len(args) >= 2 {
		v, ok := parseInt(args[1])
		if !ok {
			c.wr.errorString("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 && v != 3 {
			c.wr.errorString("NOPROTO unsupported protocol version")
			return
		}
		proto = int(v)
	}
	var user, pass, name []byte
	hasAuth, hasName := false, false
	for i := 2; i < len(args); i++ {
		more := len(args) - i - 1
		switch {
		case eqFold(args[i], "auth") && more >= 2:
			user, pass, hasAuth = args[i+1], args[i+2], true
			i += 2
		case eqFold(args[i], "setname") && more >= 1:
			name, hasName = args[i+1], true
			i++
		default:
			c.wr.errorString("ERR Syntax error in HELLO option '" + string(args[i]) + "'")
			return
		}
	}
	if hasAuth {
		if !c.checkPassword(user, pass) {
			c.wr.errorString(errWrongPass)
			return
		}
	} else if !c.authed {
		c.wr.errorString("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if hasName {
		if msg := validClientName(name); msg != "" {
			c.wr.errorString(msg)
			return
		}
		c.setName(string(name))
	}
	c.wr.proto, c.imm.proto = proto, proto
	c.wr.mapLen(7)
	c.wr.bulkString("server")
	c.wr.bulkString("redis")
	c.wr.bulkString("version")
	c.wr.bulkString(redisCompatVersion)
	c.wr.bulkString("proto")
	c.wr.int(int64(proto))
	c.wr.bulkString("id")
	c.wr.int(c.id)
	c.wr.bulkString("mode")
	c.wr.bulkString("standalone")
	c.wr.bulkString("role")
	c.wr.bulkString("master")
	c.wr.bulkString("modules")
	c.wr.array(0)
}

// validClientName applies Redis's rule for client names: printable ASCII
// without spaces.
func validClientName(name []byte) string {
	for _, ch := range name {
		if ch < '!' || ch > '~' {
			return "ERR Client names cannot contain spaces, newlines or special characters."
		}
	}
	return ""
}

// CLIENT SETNAME|GETNAME|ID|INFO|SETINFO|HELP

func cmdClient(c *conn, args [][]byte) {
	sub := args[1]
	from := len(c.imm.b)
	w := &c.imm
	switch {
	case eqFold(sub, "setname"):
		if len(args) != 3 {
			c.immError(arityError("client|setname"))
			return
		}
		if msg := validClientName(args[2]); msg != "" {
			c.immError(msg)
			return
		}
		c.setName(string(args[2]))
		w.ok()
	case eqFold(sub, "getname"):
		if len(args) != 2 {
			c.immError(arityError("client|getname"))
			return
		}
		if name := c.getName(); name == "" {
			w.null()
		} else {
			w.bulkString(name)
		}
	case eqFold(sub, "id"):
		if len(args) != 2 {
			c.immError(arityError("client|id"))
			return
		}
		w.int(c.id)
	case eqFold(sub, "info"):
		if len(args) != 2 {
			c.immError(arityError("client|info"))
			return
		}
		w.bulkString(c.info() + " resp=" + strconv.Itoa(c.wr.proto) + "\n")
	case eqFold(sub, "list"):
		if len(args) != 2 {
			c.immError(errSyntax)
			return
		}
		w.bulkString(c.s.clientList())
	case eqFold(sub, "setinfo"):
		if len(args) != 4 {
			c.immError(arityError("client|setinfo"))
			return
		}
		if !eqFold(args[2], "lib-name") && !eqFold(args[2], "lib-ver") {
			c.immError("ERR Unrecognized option '" + string(args[2]) + "'")
			return
		}
		w.ok()
	case eqFold(sub, "help"):
		help := []string{
			"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GETNAME", "    Return the name of the current connection.",
			"ID", "    Return the ID of the current connection.",
			"INFO", "    Return information about the current client connection.",
			"LIST", "    Return information about client connections.",
			"SETINFO <option> <value>", "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
			"SETNAME <name>", "    Assign the name <name> to the current connection.",
		}
		w.array(len(help))
		for _, h := range help {
			w.simple(h)
		}
	default:
		c.immError(unknownSubcommand(sub, "CLIENT"))
		return
	}
	c.immEnd(from)
}

// info describes the connection in Redis's CLIENT LIST format. It may be
// called from any goroutine.
func (c *conn) info() string {
	return fmt.Sprintf("id=%d addr=%s laddr=%s name=%s age=%d db=0",
		c.id, c.addr, c.nc.LocalAddr(), c.getName(), int64(time.Since(c.created).Seconds()))
}

// clientList is CLIENT LIST: one line per connection, by id.
func (s *Server) clientList() string {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	slices.SortFunc(conns, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
	var b strings.Builder
	for _, c := range conns {
		b.WriteString(c.info())
		b.WriteByte('\n')
	}
	return b.String()
}

func unknownSubcommand(sub []byte, cmd string) string {
	return "ERR unknown subcommand '" + string(truncate(sub, 128)) + "'. Try " + cmd + " HELP."
}

// COMMAND [COUNT|LIST|INFO name...|DOCS name...]

func cmdCommand(c *conn, args [][]byte) {
	from := len(c.imm.b)
	w := &c.imm
	all := c.s.cmdList
	switch {
	case len(args) == 1:
		w.array(len(all))
		for _, cmd := range all {
			writeCommandInfo(w, cmd)
		}
	case eqFold(args[1], "count") && len(args) == 2:
		w.int(int64(len(all)))
	case eqFold(args[1], "list"):
		w.array(len(all))
		for _, cmd := range all {
			w.bulkString(cmd.name)
		}
	case eqFold(args[1], "info"):
		if len(args) == 2 {
			w.array(len(all))
			for _, cmd := range all {
				writeCommandInfo(w, cmd)
			}
			break
		}
		w.array(len(args) - 2)
		for _, name := range args[2:] {
			if cmd := c.s.cmds[strings.ToLower(string(name))]; cmd != nil {
				writeCommandInfo(w, cmd)
			} else {
				w.null()
			}
		}
	case eqFold(args[1], "docs"):
		// Documentation is optional for clients (redis-cli uses it for
		// hints); an empty map says there is none.
		w.mapLen(0)
	case eqFold(args[1], "count"):
		c.immError(arityError("command|count"))
		return
	default:
		c.immError(unknownSubcommand(args[1], "COMMAND"))
		return
	}
	c.immEnd(from)
}

// writeCommandInfo writes one command in the ten-element shape of Redis 7's
// COMMAND reply: name, arity, flags, first key, last key, step, ACL
// categories, tips, key specifications and subcommands.
func writeCommandInfo(w *writer, cmd *command) {
	w.array(10)
	w.bulkString(cmd.name)
	w.int(int64(cmd.arity))
	w.array(len(cmd.flags))
	for _, f := range cmd.flags {
		w.simple(f)
	}
	w.int(int64(cmd.firstKey))
	w.int(int64(cmd.lastKey))
	w.int(int64(cmd.step))
	w.array(0)
	w.array(0)
	w.array(0)
	w.array(0)
}

// CONFIG GET pattern [pattern ...]: a few read-only parameters that tools
// such as redis-benchmark ask for. CONFIG SET is refused.

func cmdConfig(c *conn, args [][]byte) {
	sub := args[1]
	switch {
	case eqFold(sub, "get"):
		if len(args) < 3 {
			c.immError(arityError("config|get"))
			return
		}
		params := c.configParams()
		var match []int
		for i := 0; i < len(params); i += 2 {
			for _, p := range args[2:] {
				if ok, _ := path.Match(strings.ToLower(string(p)), params[i]); ok {
					match = append(match, i)
					break
				}
			}
		}
		from := len(c.imm.b)
		c.imm.mapLen(len(match))
		for _, i := range match {
			c.imm.bulkString(params[i])
			c.imm.bulkString(params[i+1])
		}
		c.immEnd(from)
	case eqFold(sub, "set"):
		c.immError("ERR CONFIG SET is not supported: starling is configured at start-up")
	case eqFold(sub, "resetstat"):
		c.immOK()
	default:
		c.immError(unknownSubcommand(sub, "CONFIG"))
	}
}

// configParams lists the parameters CONFIG GET reports, as name, value
// pairs.
func (c *conn) configParams() []string {
	cfg := &c.s.cfg
	return []string{
		"appendonly", "no",
		"save", "",
		"databases", "1",
		"maxclients", strconv.Itoa(cfg.MaxConns),
		"timeout", strconv.FormatInt(int64(cfg.IdleTimeout.Seconds()), 10),
		"proto-max-bulk-len", strconv.Itoa(cfg.MaxBulkLen),
		"client-query-buffer-limit", strconv.Itoa(cfg.MaxQueryBuffer),
		"cluster-enabled", "no",
		"maxmemory", strconv.FormatInt(c.s.backend.Stats().MaxMemory, 10),
	}
}

// DBSIZE: the number of keys in the whole cluster, summed over members.

func execDBSize(c *conn, _ [][]byte) {
	ks, err := c.clusterKeyspace(false)
	if err != "" {
		c.wr.errorString(err)
		return
	}
	c.wr.int(ks.keys)
}

// keyspace is the cluster's INFO keyspace line: its keys, how many have an
// expiry, and their average remaining time to live in milliseconds.
type keyspace struct{ keys, expires, avgTTL int64 }

// clusterKeyspace sums the key counts of every member that answers, with
// expiry their expiring keys too, and weighs each member's average time
// to live by its count of them (leaving out a member that could not
// estimate one); it fails only if no member answers.
func (c *conn) clusterKeyspace(expiry bool) (keyspace, string) {
	req := &transport.Request{Op: transport.OpDBSize}
	if expiry {
		req.Delta = 1
	}
	rs := c.s.backend.Broadcast(c.ctx, req)
	var ks keyspace
	var ttlSum, weight float64 // an int64 sum of TTLs can overflow
	answered := false
	var last *transport.Response
	for _, r := range rs {
		if r == nil {
			continue
		}
		if r.Code != transport.CodeOK {
			last = r
			continue
		}
		answered = true
		ks.keys += r.Int
		ks.expires += int64(r.Version)
		if r.TTL >= 0 {
			ttlSum += float64(r.TTL) * float64(r.Version)
			weight += float64(r.Version)
		}
	}
	if !answered && last != nil {
		return keyspace{}, errorText(last)
	}
	if weight > 0 {
		ks.avgTTL = int64(ttlSum / weight)
	}
	return ks, ""
}

// FLUSHALL [ASYNC|SYNC], FLUSHDB [ASYNC|SYNC]: empty every member, if the
// node was started with FLUSHALL enabled.

func execFlushAll(c *conn, args [][]byte) {
	name := strings.ToLower(string(args[0]))
	if len(args) > 2 || len(args) == 2 && !eqFold(args[1], "async") && !eqFold(args[1], "sync") {
		c.wr.errorString(errSyntax)
		return
	}
	if !c.s.cfg.EnableFlushAll {
		c.wr.errorString("ERR " + strings.ToUpper(name) + " is disabled on this node: it empties the whole cluster (start the node with --enable-flushall to allow it)")
		return
	}
	rs := c.s.backend.Broadcast(c.ctx, &transport.Request{Op: transport.OpFlushAll})
	failed := 0
	var first *transport.Response
	for _, r := range rs {
		if r == nil || r.Code != transport.CodeOK {
			failed++
			if first == nil && r != nil {
				first = r
			}
		}
	}
	if failed > 0 {
		msg := "unknown error"
		if first != nil {
			msg = strings.TrimPrefix(errorText(first), "ERR ")
		}
		c.wr.errorString(fmt.Sprintf("ERR %s failed on %d of %d members: %s", strings.ToUpper(name), failed, len(rs), msg))
		return
	}
	c.s.log.Info("resp: cluster flushed", "command", name, "client", c.addr, "members", len(rs))
	c.wr.ok()
}
