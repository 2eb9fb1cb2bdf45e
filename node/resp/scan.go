package resp

import (
	"strconv"

	"github.com/starlingcache/starling/transport"
)

// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
//
// The cursor is the backend's: a walk of every member's keys in turn (see
// Backend.Scan), so any node continues a walk another began. Every value
// is a string, so TYPE string lists everything and any other type nothing.

func execScan(c *conn, args [][]byte) {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		c.wr.errorString("ERR invalid cursor")
		return
	}
	match, count, wantStrings, msg := scanOptions(args[2:])
	if msg != "" {
		c.wr.errorString(msg)
		return
	}
	keys, next, err := c.s.backend.Scan(c.ctx, cursor, match, count)
	if err != nil {
		c.scanError(err)
		return
	}
	if !wantStrings {
		keys = nil
	}
	c.wr.array(2)
	c.wr.bulkString(strconv.FormatUint(next, 10))
	c.wr.array(len(keys))
	for _, k := range keys {
		c.wr.bulkString(k)
	}
}

// scanOptions parses SCAN's options: the pattern, the count (10 unless
// given) and whether the TYPE asked for, if any, is string.
func scanOptions(args [][]byte) (match string, count int, wantStrings bool, msg string) {
	match, count, wantStrings = "*", 10, true
	for i := 0; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return "", 0, false, errSyntax
		}
		switch v := args[i+1]; {
		case eqFold(args[i], "match"):
			match = string(v)
		case eqFold(args[i], "count"):
			n, ok := parseInt(v)
			if !ok {
				return "", 0, false, errNotInteger
			}
			if n < 1 {
				return "", 0, false, errSyntax
			}
			count = int(min(n, 1<<20))
		case eqFold(args[i], "type"):
			wantStrings = eqFold(v, "string")
		default:
			return "", 0, false, errSyntax
		}
	}
	return match, count, wantStrings, ""
}

// KEYS pattern: the whole walk in one reply. Like Redis's, it visits every
// key of the cluster before it answers; SCAN is the way to list a large
// one.

func execKeys(c *conn, args [][]byte) {
	match := string(args[1])
	var keys []string
	var cursor uint64
	for {
		// As many slots a step as a node allows: one round trip each.
		step, next, err := c.s.backend.Scan(c.ctx, cursor, match, 1<<15)
		if err != nil {
			c.scanError(err)
			return
		}
		keys = append(keys, step...)
		if next == 0 {
			break
		}
		cursor = next
	}
	c.wr.array(len(keys))
	for _, k := range keys {
		c.wr.bulkString(k)
	}
}

func (c *conn) scanError(err error) {
	c.wr.errorString(errorText(&transport.Response{Code: transport.CodeOf(err), Err: err.Error()}))
}
