package node

import (
	"strings"
	"testing"
)

// globCases pin the Redis behaviours a client can observe through KEYS and
// SCAN MATCH, including the odd corners, so a future "cleanup" toward
// path.Match or POSIX bracket rules fails loudly.
var globCases = []struct {
	pattern, s string
	want       bool
}{
	// Empty inputs.
	{"", "", true},
	{"", "a", false},
	{"a", "", false},
	{"?", "", false},
	{"[a]", "", false},
	{"*?", "", false},
	// KEYS * and SCAN MATCH * return the empty key in Redis.
	{"*", "", true},
	{"**", "", true},

	// Stars.
	{"*", "anything", true},
	{"*", "a/b/c", true},
	{"user:*", "user:42", true},
	{"user:*", "user:", true},
	{"user:*", "users:1", false},
	{"*:*:*", "a:b:c", true},
	{"*:*:*", "a:b", false},
	{"a**b", "ab", true},
	{"a*b*c", "abc", true},
	{"a*b*c", "axxbyyc", true},
	{"a*b*c", "abcbc", true},
	{"a*b*c", "acb", false},
	{"a*b*c", "abbbcx", false},
	{"*a*b", "aXbab", true},
	{"*ab", "aab", true},
	{"a/*", "a/b/c", true},
	{"*/c", "a/b/c", true},

	// Question mark: one byte, never zero, and bytes rather than runes.
	{"?", "a", true},
	{"?", "ab", false},
	{"a?c", "abc", true},
	{"a?c", "ac", false},
	{"a/?", "a/b", true},
	{"?", "é", false},
	{"??", "é", true},

	// Sets, negation and ranges.
	{"[abc]", "b", true},
	{"[abc]", "d", false},
	{"[abc]", "ab", false},
	{"[^abc]", "d", true},
	{"[^abc]", "a", false},
	{"[a-c]x", "bx", true},
	{"[a-c]", "d", false},
	{"[c-a]", "b", true},
	{"[z-a]", "m", true},
	{"[0-9a-f]", "e", true},
	{"[^0-9]", "5", false},
	{"[-a]", "-", true},
	{"*[*]", "x*", true},
	{"[]", "]", false},    // ']' first closes an empty set
	{"[]a]", "a]", false}, // so this can never match
	{"[^]", "x", true},
	{"[^^]", "^", false},
	{"[a-]", "]", true}, // the range is ']'..'a'
	{"[a-]", "-", false},

	// Escapes, outside and inside sets.
	{`\*`, "*", true},
	{`\*`, "a", false},
	{`*\*`, "abc*", true},
	{`*\*`, "abc", false},
	{`\?`, "?", true},
	{`\?`, "a", false},
	{`\[`, "[", true},
	{`\[a]`, "[a]", true},
	{`a\b`, "ab", true},
	{`\\`, `\`, true},
	{`\\`, `\\`, false},
	{`[\]]`, "]", true},
	{`[\^a]`, "^", true},
	{`[\-]`, "-", true},
	{`[a\-z]`, "-", true},
	{`[a\-z]`, "m", false},
	{`[\\]`, `\`, true},

	// Unterminated sets run to the end of the pattern.
	{"[abc", "b", true},
	{"[abc", "d", false},
	{"[a-c", "b", true},
	{"[a-", "-", true},
	{"[a-", "b", false},
	{"[^", "q", true},
	{"[", "[", false},
	{"[", "", false},
	{"x[", "x", false},
	{`[\`, `\`, true},

	// A trailing lone backslash is a literal backslash.
	{`\`, `\`, true},
	{`a\`, `a\`, true},
	{`a\`, "a", false},
	{`*\`, `dir\`, true},

	// Case-sensitive and binary-safe.
	{"abc", "ABC", false},
	{"[a-z]", "A", false},
	{"\x00*", "\x00\xff", true},
	{"*\x00", "abc\x00", true},
	{"[^\x00]", "\x00", false},
	{"[\x80-\xff]", "\x90", true},
	{"[\xff-\x80]", "\x7f", false},
	{"?", "\xff", true},
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range globCases {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
		// The table also keeps the fuzz oracle honest.
		if got := redisGlob(tc.pattern, tc.s); tc.s != "" && got != tc.want {
			t.Errorf("redisGlob(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

// Random fuzzing rarely produces well-formed sets and escapes, so every short
// pattern over the bytes that carry meaning is checked against the oracle.
func TestGlobMatchExhaustive(t *testing.T) {
	patterns := globStrings(`*?[]^-\ab`, 4)
	keys := globStrings(`ab]-\*^`, 3)
	for _, p := range patterns {
		for _, s := range keys {
			if got, want := globMatch(p, s), globWant(p, s); got != want {
				t.Fatalf("globMatch(%q, %q) = %v, want %v", p, s, got, want)
			}
		}
	}
}

// Patterns come straight from clients, so a hostile one must not be able to
// stall a node; this would take exponential time with naive backtracking.
func TestGlobMatchPathological(t *testing.T) {
	pattern := strings.Repeat("*a", 1000) + "b"
	s := strings.Repeat("a", 5000)
	if globMatch(pattern, s) {
		t.Fatal("matched a key with no 'b'")
	}
	if !globMatch(pattern, s+"b") {
		t.Fatal("failed to match a key ending in 'b'")
	}
}

// The matcher runs once per key during a scan, so any allocation would be
// multiplied by the keyspace.
func TestGlobMatchNoAllocs(t *testing.T) {
	matched := 0
	allocs := testing.AllocsPerRun(100, func() {
		for _, tc := range globCases {
			if globMatch(tc.pattern, tc.s) {
				matched++
			}
		}
	})
	if matched == 0 {
		t.Fatal("no case matched")
	}
	if allocs != 0 {
		t.Fatalf("globMatch allocated %v times per run", allocs)
	}
}

func FuzzGlobMatch(f *testing.F) {
	for _, tc := range globCases {
		f.Add(tc.pattern, tc.s)
	}
	f.Add("*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaa")
	f.Add(`[^\]a-]*\`, `]x\`)
	f.Fuzz(func(t *testing.T, pattern, s string) {
		// The oracle is recursive and can be slow on long inputs; short
		// inputs already reach every branch.
		if len(pattern) > 64 || len(s) > 64 {
			return
		}
		if got, want := globMatch(pattern, s), globWant(pattern, s); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, want %v", pattern, s, got, want)
		}
	})
}

func BenchmarkGlobMatch(b *testing.B) {
	benches := []struct{ name, pattern, s string }{
		{"prefix", "user:*", "user:1234567890:profile"},
		{"classes", "user:[0-9][0-9]*:[^x]*", "user:1234567890:profile"},
		{"backtrack", "*a*a*a*b", strings.Repeat("a", 64)},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				globMatch(bb.pattern, bb.s)
			}
		})
	}
}

// globWant is what globMatch should return: Redis's answer, except that an
// all-'*' pattern matches the empty key as KEYS * and SCAN MATCH * do.
func globWant(pattern, s string) bool {
	if s == "" {
		return strings.Trim(pattern, "*") == ""
	}
	return redisGlob(pattern, s)
}

// redisGlob is a line-by-line transliteration of stringmatchlen_impl from
// Redis's util.c (nocase off), kept recursive so it shares no structure with
// globMatch. Where C reads the byte past the end of the pattern it sees the
// string's NUL terminator, which at reproduces. Redis's nesting cap is left
// out because inputs here are far too short to reach it.
func redisGlob(pattern, s string) bool {
	skipLonger := false
	return redisGlobImpl(pattern, s, &skipLonger)
}

func redisGlobImpl(pattern, s string, skipLonger *bool) bool {
	at := func(i int) byte {
		if i < len(pattern) {
			return pattern[i]
		}
		return 0
	}
	p, i := 0, 0
	for p < len(pattern) && i < len(s) {
		switch pattern[p] {
		case '*':
			for at(p+1) == '*' {
				p++
			}
			if len(pattern)-p == 1 {
				return true
			}
			for ; i < len(s); i++ {
				if redisGlobImpl(pattern[p+1:], s[i:], skipLonger) {
					return true
				}
				if *skipLonger {
					return false
				}
			}
			*skipLonger = true
			return false
		case '?':
			i++
		case '[':
			p++
			not := at(p) == '^'
			if not {
				p++
			}
			match := false
			for {
				if at(p) == '\\' && len(pattern)-p >= 2 {
					p++
					if pattern[p] == s[i] {
						match = true
					}
				} else if at(p) == ']' {
					break
				} else if p == len(pattern) {
					p--
					break
				} else if len(pattern)-p >= 3 && pattern[p+1] == '-' {
					start, end := pattern[p], pattern[p+2]
					if start > end {
						start, end = end, start
					}
					p += 2
					if s[i] >= start && s[i] <= end {
						match = true
					}
				} else if pattern[p] == s[i] {
					match = true
				}
				p++
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			i++
		case '\\':
			if len(pattern)-p >= 2 {
				p++
			}
			fallthrough
		default:
			if pattern[p] != s[i] {
				return false
			}
			i++
		}
		p++
		if i == len(s) {
			for at(p) == '*' {
				p++
			}
			break
		}
	}
	return p == len(pattern) && i == len(s)
}

// globStrings returns every string of up to maxLen bytes drawn from alphabet.
func globStrings(alphabet string, maxLen int) []string {
	out := []string{""}
	layer := []string{""}
	for range maxLen {
		var next []string
		for _, prefix := range layer {
			for j := 0; j < len(alphabet); j++ {
				next = append(next, prefix+alphabet[j:j+1])
			}
		}
		out = append(out, next...)
		layer = next
	}
	return out
}
