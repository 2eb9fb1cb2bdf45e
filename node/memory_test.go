package node

import "testing"

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512MiB", 512 << 20, true},
		{"2GiB", 2 << 30, true},
		{"2gib", 2 << 30, true},
		{"64KiB", 64 << 10, true},
		{"1.5GB", 1_500_000_000, true},
		{"100", 100, true},
		{"100B", 100, true},
		{"1M", 1 << 20, true},
		{" 3 MB ", 3_000_000, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"12XB", 0, false},
		{"-1GiB", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d (ok=%v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 512: "512 B", 1536: "1.5 KiB", 256 << 20: "256 MiB", 6 << 30: "6 GiB"} {
		if got := FormatSize(in); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", in, got, want)
		}
	}
}
