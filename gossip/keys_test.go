package gossip

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testKey returns a key of n bytes, all b.
func testKey(n int, b byte) Key { return Key(bytes.Repeat([]byte{b}, n)) }

func TestParseKey(t *testing.T) {
	for _, n := range []int{16, 24, 32} {
		raw := make([]byte, n)
		for i := range raw {
			raw[i] = byte(i*37 + 250) // crosses into the bytes where the alphabets differ
		}
		for name, enc := range map[string]*base64.Encoding{
			"std": base64.StdEncoding, "raw std": base64.RawStdEncoding,
			"url": base64.URLEncoding, "raw url": base64.RawURLEncoding,
		} {
			k, err := ParseKey("  " + enc.EncodeToString(raw) + "\n")
			if err != nil || !bytes.Equal(k, raw) {
				t.Errorf("%d bytes, %s: ParseKey = %v, %v", n, name, k, err)
			}
		}
	}
	secretish := base64.StdEncoding.EncodeToString([]byte("twenty bytes long!!!"))
	for name, s := range map[string]string{
		"empty":       "",
		"blank":       " \n",
		"not base64":  "this is not base64!",
		"20 bytes":    secretish,
		"64 bytes":    base64.StdEncoding.EncodeToString(make([]byte, 64)),
		"hex":         hex.EncodeToString(make([]byte, 16)) + "zz",
		"inner space": "AAAAAAAAAAAA AAAAAAAAAAA==",
	} {
		k, err := ParseKey(s)
		if !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: ParseKey = %v, %v; want ErrBadKey", name, k, err)
			continue
		}
		if strings.TrimSpace(s) != "" && strings.Contains(err.Error(), strings.TrimSpace(s)) {
			t.Errorf("%s: the error quotes the key: %v", name, err)
		}
	}
}

func TestKeyUnmarshalText(t *testing.T) {
	want := testKey(24, 3)
	var cfg struct{ Key Key }
	if err := json.Unmarshal([]byte(`{"Key":"`+base64.StdEncoding.EncodeToString(want)+`"}`), &cfg); err != nil || !bytes.Equal(cfg.Key, want) {
		t.Fatalf("json.Unmarshal = %v, %v", cfg.Key, err)
	}
	if err := json.Unmarshal([]byte(`{"Key":"c2hvcnQ="}`), &cfg); !errors.Is(err, ErrBadKey) {
		t.Errorf("short key: %v, want ErrBadKey", err)
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	want := testKey(32, 7)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	k, err := LoadKeyFile(write("good", base64.StdEncoding.EncodeToString(want)+"\n"))
	if err != nil || !bytes.Equal(k, want) {
		t.Fatalf("LoadKeyFile = %v, %v", k, err)
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
	short := base64.StdEncoding.EncodeToString([]byte("only ten b"))
	if _, err := LoadKeyFile(write("short", short)); !errors.Is(err, ErrBadKey) || strings.Contains(err.Error(), short) {
		t.Errorf("short key: %v, want ErrBadKey without the content", err)
	}
	if _, err := LoadKeyFile(write("big", strings.Repeat("A", maxKeyFile+1))); !errors.Is(err, ErrBadKey) {
		t.Errorf("oversized file: %v, want ErrBadKey", err)
	}
}

func TestKeyIsRedacted(t *testing.T) {
	k := testKey(32, 0xab)
	leaks := []string{"abab", "ABAB", "171 171", "q6ur"}
	check := func(what, out string) {
		t.Helper()
		for _, l := range leaks {
			if strings.Contains(out, l) {
				t.Errorf("%s shows the key (%q): %s", what, l, out)
			}
		}
	}
	cfg := DefaultLANConfig()
	cfg.SecretKey = k
	cfg.ExtraKeys = []Key{k}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		check(verb, fmt.Sprintf(verb, k))
		check(verb+" of a Config", fmt.Sprintf(verb, cfg))
	}
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, nil))
	l.Info("x", "key", k, "keys", cfg.ExtraKeys, "config", cfg)
	check("slog JSON", buf.String())
	buf.Reset()
	l = slog.New(slog.NewTextHandler(&buf, nil))
	l.Info("x", "key", k, "keys", cfg.ExtraKeys, "config", cfg)
	check("slog text", buf.String())
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	check("JSON", string(js))
	if !strings.Contains(fmt.Sprint(k), "32 bytes") {
		t.Errorf("String = %q, want the length", k.String())
	}
}

// encryptedConfig is nodeConfig with the given keyring.
func encryptedConfig(tb testing.TB, name string, primary Key, extra []Key, seeds ...string) Config {
	cfg := nodeConfig(tb, name, seeds...)
	cfg.SecretKey = primary
	cfg.ExtraKeys = extra
	return cfg
}

func TestEncryptedNodesJoin(t *testing.T) {
	key := testKey(16, 1)
	a := startNode(t, encryptedConfig(t, "a", key, nil))
	b := startNode(t, encryptedConfig(t, "b", key, nil, a.Addr()))
	waitConverged(t, []*testNode{a, b})
	if a.NumKeys() != 1 {
		t.Errorf("NumKeys = %d, want 1", a.NumKeys())
	}
}

func TestJoinWithoutTheKeyFails(t *testing.T) {
	key, other := testKey(32, 1), testKey(32, 2)
	encrypted := startNode(t, encryptedConfig(t, "encrypted", key, nil))
	plain := startNode(t, nodeConfig(t, "plain"))

	cases := []struct {
		name string
		cfg  Config
	}{
		{"no key", nodeConfig(t, "no-key", encrypted.Addr())},
		{"another key", encryptedConfig(t, "other-key", other, nil, encrypted.Addr())},
		{"key, joining a clear-text node", encryptedConfig(t, "keyed", key, nil, plain.Addr())},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := startNode(t, tc.cfg)
			// The join loop retries in the background; one attempt by hand
			// returns its error.
			contacted, candidates, err := n.joinSeeds(ctxTimeout(t, waitTimeout), 0)
			if contacted != 0 || candidates != 1 || err == nil || !strings.Contains(err.Error(), "crypt") {
				t.Fatalf("joinSeeds = %d of %d, %v; want 0 of 1 and an encryption error", contacted, candidates, err)
			}
			t.Logf("join error: %v", err)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if err := n.WaitJoined(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("WaitJoined = %v, want DeadlineExceeded", err)
			}
			for _, g := range []*testNode{n, encrypted, plain} {
				if got := g.NumMembers(); got != 1 {
					t.Errorf("%s lists %d members, want 1: %v", g.name, got, g.Members())
				}
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	oldKey, newKey := testKey(32, 1), testKey(32, 2)
	nodes := startCluster(t, 3, nodeConfig, func(c *Config) { c.SecretKey = oldKey })

	// canJoin reports whether a fresh node with the given keyring can join
	// the cluster, and shuts it down.
	canJoin := func(name string, primary Key, extra ...Key) bool {
		cfg := encryptedConfig(t, name, primary, extra, nodes[0].Addr())
		cfg.RejoinInterval = 0
		g, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Shutdown()
		contacted, _, _ := g.joinSeeds(ctxTimeout(t, waitTimeout), 0)
		return contacted == 1
	}
	step := func(what string, op func(*Gossip) error) {
		t.Helper()
		for _, n := range nodes {
			if err := op(n.Gossip); err != nil {
				t.Fatalf("%s on %s: %v", what, n.name, err)
			}
		}
	}

	if err := nodes[0].UseKey(newKey); !errors.Is(err, ErrKeyNotInstalled) {
		t.Errorf("UseKey before InstallKey = %v, want ErrKeyNotInstalled", err)
	}
	step("install the new key", func(g *Gossip) error { return g.InstallKey(newKey) })
	if !canJoin("old-only-1", oldKey) {
		t.Error("after step 1, a node with only the old key cannot join")
	}
	if err := nodes[0].RemoveKey(oldKey); !errors.Is(err, ErrPrimaryKey) {
		t.Errorf("RemoveKey(primary) = %v, want ErrPrimaryKey", err)
	}

	step("use the new key", func(g *Gossip) error { return g.UseKey(newKey) })
	if !canJoin("new-only-2", newKey) {
		t.Error("after step 2, a node with only the new key cannot join")
	}

	step("remove the old key", func(g *Gossip) error { return g.RemoveKey(oldKey) })
	if canJoin("old-only-3", oldKey) {
		t.Error("after step 3, a node with only the old key still joins")
	}
	if !canJoin("new-only-3", newKey) {
		t.Error("after step 3, a node with the new key cannot join")
	}
	for _, n := range nodes {
		if n.NumKeys() != 1 {
			t.Errorf("%s holds %d keys, want 1", n.name, n.NumKeys())
		}
	}
	// The three kept talking throughout: a fourth joins and all converge.
	last := startNode(t, encryptedConfig(t, "last", newKey, nil, nodes[1].Addr()))
	waitConverged(t, append(nodes, last))
}

func TestKeyCallsNeedEncryption(t *testing.T) {
	n := startNode(t, nodeConfig(t, "plain"))
	k := testKey(16, 1)
	for name, err := range map[string]error{
		"InstallKey": n.InstallKey(k), "UseKey": n.UseKey(k), "RemoveKey": n.RemoveKey(k),
	} {
		if !errors.Is(err, ErrNotEncrypted) {
			t.Errorf("%s on a clear-text node = %v, want ErrNotEncrypted", name, err)
		}
	}
	e := startNode(t, encryptedConfig(t, "enc", k, nil))
	if err := e.InstallKey(Key("short")); !errors.Is(err, ErrBadKey) {
		t.Errorf("InstallKey(5 bytes) = %v, want ErrBadKey", err)
	}
	if err := e.RemoveKey(testKey(24, 9)); err != nil {
		t.Errorf("RemoveKey of a key not installed = %v, want nil", err)
	}
}
