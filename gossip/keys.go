package gossip

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/hashicorp/memberlist"
)

// Key is a gossip encryption key: 16, 24 or 32 random bytes, selecting
// AES-128, -192 or -256 (GCM). It prints, formats, logs and marshals as its
// length only, so a Config can be logged or dumped without leaking it; it
// unmarshals from base64 text (see ParseKey), so a configuration file can
// hold one.
type Key []byte

// String describes the key without revealing it.
func (k Key) String() string {
	return fmt.Sprintf("gossip.Key(%d bytes, redacted)", len(k))
}

// Format prints String for every verb (%x and %d included), so no format
// string can print the bytes.
func (k Key) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, k.String())
}

// LogValue keeps the key out of slog records.
func (k Key) LogValue() slog.Value {
	return slog.StringValue(k.String())
}

// MarshalText hides the key from encoders (JSON, YAML) that would otherwise
// write it out in base64, in a slice or struct where LogValue does not
// apply.
func (k Key) MarshalText() ([]byte, error) {
	return []byte(k.String()), nil
}

// UnmarshalText parses a key written in base64, as ParseKey does.
func (k *Key) UnmarshalText(text []byte) error {
	parsed, err := ParseKey(string(text))
	if err != nil {
		return err
	}
	*k = parsed
	return nil
}

// maxKeyFile bounds what LoadKeyFile reads: a key in base64 is 44 bytes, so
// anything much larger is the wrong file.
const maxKeyFile = 4 << 10

// checkKey reports whether k has a length AES accepts.
func checkKey(k []byte) error {
	switch len(k) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("%w: %d bytes, want 16, 24 or 32", ErrBadKey, len(k))
}

// ParseKey decodes a key written in base64 (standard or URL alphabet,
// padded or not; surrounding white space ignored), as `openssl rand -base64
// 32` prints one. Errors wrap ErrBadKey and never quote the input.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadKey)
	}
	var (
		b   []byte
		err error
	)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 (%d characters)", ErrBadKey, len(s))
	}
	if err := checkKey(b); err != nil {
		return nil, err
	}
	return Key(b), nil
}

// LoadKeyFile reads a key file: one key in base64 (see ParseKey), as a
// secret mounted by Kubernetes or written by `openssl rand -base64 32 >
// file`. Errors name the file, never its content.
func LoadKeyFile(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gossip: key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("gossip: key file %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%w: key file %s is over %d bytes", ErrBadKey, path, maxKeyFile)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// InstallKey adds k to this node's keyring: the node then decrypts gossip
// sent with k, but keeps encrypting with its primary key. Installing a key
// already there does nothing. It fails with ErrNotEncrypted on a node
// started without a SecretKey (encryption cannot be turned on at run time).
//
// Rotating the cluster's key without downtime takes three steps, each one
// done on every node before the next begins: (1) install the new key
// everywhere (InstallKey): every node now reads both keys and still writes
// with the old one; (2) make the new key primary everywhere (UseKey): nodes
// write with the new key, which every node can already read; (3) remove the
// old key everywhere (RemoveKey). A node that switches its primary before
// every node has installed the new key is cut off from those that have not.
// A node (re)started during a rotation starts with the keys of the current
// step: SecretKey the key in use as primary, ExtraKeys the other one until
// step 3 is done.
func (g *Gossip) InstallKey(k Key) error {
	if g.keyring == nil {
		return ErrNotEncrypted
	}
	if err := checkKey(k); err != nil {
		return err
	}
	if err := g.keyring.AddKey(bytes.Clone(k)); err != nil {
		return fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	g.log.Info("gossip key installed", "keys", len(g.keyring.GetKeys()))
	return nil
}

// UseKey makes an installed key the primary one, used to encrypt from now
// on (step 2 of a rotation; see InstallKey). A key not installed is
// ErrKeyNotInstalled.
func (g *Gossip) UseKey(k Key) error {
	if g.keyring == nil {
		return ErrNotEncrypted
	}
	if !g.hasKey(k) {
		return ErrKeyNotInstalled
	}
	if err := g.keyring.UseKey(k); err != nil {
		return fmt.Errorf("%w: %v", ErrKeyNotInstalled, err)
	}
	g.log.Info("gossip primary key changed", "keys", len(g.keyring.GetKeys()))
	return nil
}

// RemoveKey drops k from the keyring, so gossip sent with it is no longer
// accepted (step 3 of a rotation; see InstallKey). Removing the primary key
// is ErrPrimaryKey; removing a key not installed does nothing.
func (g *Gossip) RemoveKey(k Key) error {
	if g.keyring == nil {
		return ErrNotEncrypted
	}
	if bytes.Equal(g.keyring.GetPrimaryKey(), k) {
		return ErrPrimaryKey
	}
	if err := g.keyring.RemoveKey(k); err != nil {
		return fmt.Errorf("%w: %v", ErrPrimaryKey, err)
	}
	g.log.Info("gossip key removed", "keys", len(g.keyring.GetKeys()))
	return nil
}

// NumKeys returns how many keys the keyring holds (0 without encryption),
// so an operator can check that a rotation step reached a node.
func (g *Gossip) NumKeys() int {
	if g.keyring == nil {
		return 0
	}
	return len(g.keyring.GetKeys())
}

// hasKey reports whether k is in the keyring.
func (g *Gossip) hasKey(k []byte) bool {
	for _, have := range g.keyring.GetKeys() {
		if bytes.Equal(have, k) {
			return true
		}
	}
	return false
}

// newKeyring builds memberlist's keyring from the configured keys (checked
// by Validate), or returns nil when there is no SecretKey. The keys are
// copied: the caller's slices may be reused.
func newKeyring(primary Key, extra []Key) (*memberlist.Keyring, error) {
	if len(primary) == 0 {
		return nil, nil
	}
	keys := make([][]byte, 0, len(extra))
	for _, k := range extra {
		keys = append(keys, bytes.Clone(k))
	}
	kr, err := memberlist.NewKeyring(keys, bytes.Clone(primary))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return kr, nil
}
