package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"testing"
)

// chunkReader returns its data at most n bytes per Read.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

// parseAll runs a reader over src until EOF or a protocol error and
// returns copies of the commands it produced.
func parseAll(t *testing.T, src io.Reader, cfg *Config) ([][]string, error) {
	rd := newReader(src, cfg, nil)
	var cmds [][]string
	for range 1 << 20 {
		for {
			args, ok, err := rd.next()
			if err != nil {
				return cmds, err
			}
			if !ok {
				break
			}
			if len(args) == 0 {
				t.Fatal("next returned an empty command")
			}
			cmd := make([]string, len(args))
			for i, a := range args {
				cmd[i] = string(a)
			}
			cmds = append(cmds, cmd)
		}
		if err := rd.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				return cmds, nil
			}
			return cmds, err
		}
		if rd.w-rd.r > cfg.MaxQueryBuffer {
			t.Fatalf("buffered %d bytes, over the %d limit", rd.w-rd.r, cfg.MaxQueryBuffer)
		}
	}
	t.Fatal("parser made no progress")
	return nil, nil
}

func fuzzConfig() Config {
	cfg := DefaultConfig()
	cfg.MaxBulkLen = 4096
	cfg.MaxMultiBulkLen = 64
	cfg.MaxQueryBuffer = cfg.MaxBulkLen + minQueryRoom
	return cfg
}

// FuzzParse checks that the parser never panics, never buffers beyond its
// limit, and finds the same commands and the same error whether the bytes
// arrive at once or in pieces of any size.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		cmd("SET", "k", "v") + cmd("GET", "k"),
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"PING\r\nSET a \"b\\x41\\n\" 'c\\'d'\r\n\r\n",
		"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n",
		"*1\r\n$-1\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5000\r\n",
		"*100\r\n",
		"*1\r\n!\r\n",
		"SET a \"b\r\n",
		"\x00\xff\r\n",
	} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(7))
	}
	cfg := fuzzConfig()
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		whole, werr := parseAll(t, bytes.NewReader(bytes.Clone(data)), &cfg)
		parts, perr := parseAll(t, &chunkReader{data: bytes.Clone(data), n: int(chunk%64) + 1}, &cfg)
		if fmt.Sprint(werr) != fmt.Sprint(perr) {
			t.Fatalf("error at once %v, in pieces %v", werr, perr)
		}
		if werr != nil && !errors.Is(werr, ErrProtocol) {
			t.Fatalf("non-protocol error %v", werr)
		}
		if !reflect.DeepEqual(whole, parts) {
			t.Fatalf("commands at once %q, in pieces %q", whole, parts)
		}
	})
}

// FuzzServe feeds arbitrary bytes through a whole connection (parser,
// command translation, fake backend, reply writer): nothing may panic, and
// the server's output must be a well-formed sequence of replies.
func FuzzServe(f *testing.F) {
	for _, s := range []string{
		cmd("SET", "k", "v", "EX", "10", "GET") + cmd("GETEX", "k", "PXAT", "1") + cmd("MSETNX", "a", "b"),
		cmd("EXPIRE", "k", "-9223372036854775808", "GT") + cmd("INCRBY", "k", "-1") + cmd("HELLO", "3", "AUTH", "default", "x"),
		cmd("CLIENT", "SETNAME", "x") + cmd("COMMAND", "INFO", "get", "nope") + cmd("INFO", "all") + cmd("CONFIG", "GET", "[") + cmd("QUIT"),
		"MGET a b c\r\nDEL a\r\nSET \"\\xzz\" ''\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var logs bytes.Buffer
		s, _ := newMemServer(t, func(c *Config) {
			*c = fuzzConfig()
			c.EnableFlushAll = true
			c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))
		})
		out := serveMem(t, s, string(data))
		if logs.Len() > 0 {
			t.Fatalf("server logged an error: %s", logs.String())
		}
		if err := checkReplies([]byte(out)); err != nil {
			t.Fatalf("malformed output %q: %v", out, err)
		}
	})
}

// checkReplies verifies that b is a sequence of complete RESP2/RESP3
// replies.
func checkReplies(b []byte) error {
	for len(b) > 0 {
		n, err := replyLen(b, 0)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// replyLen returns the length of the reply at the start of b.
func replyLen(b []byte, depth int) (int, error) {
	if depth > 8 {
		return 0, errors.New("nesting too deep")
	}
	nl := bytes.Index(b, []byte("\r\n"))
	if nl < 1 {
		return 0, fmt.Errorf("no reply line in %q", b)
	}
	line := b[1:nl]
	n := nl + 2
	switch b[0] {
	case '+', '-', ':', '_':
		if bytes.ContainsAny(line, "\r\n") {
			return 0, errors.New("line break inside a line reply")
		}
		return n, nil
	case '$':
		size, ok := parseInt(line)
		if !ok || size < -1 {
			return 0, fmt.Errorf("bad bulk length %q", line)
		}
		if size == -1 {
			return n, nil
		}
		if len(b) < n+int(size)+2 || string(b[n+int(size):n+int(size)+2]) != "\r\n" {
			return 0, errors.New("truncated bulk")
		}
		return n + int(size) + 2, nil
	case '*', '%':
		count, ok := parseInt(line)
		if !ok || count < -1 {
			return 0, fmt.Errorf("bad aggregate length %q", line)
		}
		if b[0] == '%' {
			count *= 2
		}
		for range count {
			k, err := replyLen(b[n:], depth+1)
			if err != nil {
				return 0, err
			}
			n += k
		}
		return n, nil
	}
	return 0, fmt.Errorf("unknown reply type %q", b[0])
}
