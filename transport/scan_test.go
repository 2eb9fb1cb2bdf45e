package transport

import "testing"

// A walk's cursor goes member by member: a member's own cursor in the low
// bits, the member above them, and 0 after the last member.
func TestScanCursors(t *testing.T) {
	for _, tc := range []struct {
		member  uint64
		members int
		own     uint64
		want    uint64
	}{
		{0, 3, 5, 5},
		{1, 3, 5, 1<<ScanCursorBits | 5},
		{0, 3, 0, 1 << ScanCursorBits},
		{2, 3, 0, 0},
		{2, 3, 1<<ScanCursorBits - 1, 2<<ScanCursorBits | (1<<ScanCursorBits - 1)},
	} {
		got := NextScanCursor(tc.member, tc.members, tc.own)
		if got != tc.want {
			t.Errorf("NextScanCursor(%d, %d, %#x) = %#x, want %#x", tc.member, tc.members, tc.own, got, tc.want)
		}
		if m, own := SplitScanCursor(got); got != 0 && (m != tc.member && tc.own != 0 || tc.own != 0 && own != tc.own) {
			t.Errorf("SplitScanCursor(%#x) = %d, %#x", got, m, own)
		}
	}
}
