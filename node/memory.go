package node

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultMaxMemory is the store bound a node uses when none is configured: a
// quarter of the memory the process may use (physical memory, or its
// control group's limit in a container or a systemd unit with MemoryMax=),
// leaving room for the Go runtime, connection buffers and whatever else
// runs there, or 256 MiB where neither can be read.
func DefaultMaxMemory() int64 {
	if m := systemMemory(); m > 0 {
		return m / 4
	}
	return 256 << 20
}

// ParseSize parses a byte size such as "512MiB", "2GiB", "64KiB", "1.5GB"
// or a plain number of bytes. Binary (KiB, MiB, GiB, TiB) and decimal (KB,
// MB, GB, TB) units are accepted, case-insensitively; "K", "M", "G" mean
// the binary units, as in most memory flags.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[unit]
	f, err := strconv.ParseFloat(num, 64)
	if mult == 0 || err != nil || f < 0 {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit such as 512MiB or 2GiB", s)
	}
	return int64(f * mult), nil
}

// FormatSize renders n bytes in the largest binary unit that keeps it
// readable, for start-up logs and stats.
func FormatSize(n int64) string {
	units := [...]string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, u := float64(n), 0
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	return strings.TrimSuffix(strconv.FormatFloat(f, 'f', 1, 64), ".0") + " " + units[u]
}
