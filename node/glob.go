package node

// globMatch reports whether key s matches pattern under the glob rules Redis
// uses for KEYS and SCAN MATCH (stringmatchlen in Redis's util.c). Those
// patterns are evaluated on the node that owns the keys, so keys that do not
// match never cross the network; the node must therefore agree with Redis on
// every pattern a client can send, or a client migrating from Redis would see
// different results.
//
// The rules, all byte-wise and case-sensitive:
//
//   - '*' matches any run of bytes, including none and including '/'.
//   - '?' matches exactly one byte.
//   - "[...]" matches one byte from a set; a leading '^' negates it, "a-z" is
//     an inclusive range, and a reversed range such as "z-a" means the same
//     as "a-z". A ']' right after '[' (or "[^") closes an empty set rather than
//     being a member, and a '-' followed by ']' still forms a range ending at
//     ']', both as in Redis.
//   - '\' makes the next byte literal, inside a set as well as outside.
//   - A '[' whose set is never closed runs to the end of the pattern.
//   - A '\' at the very end of the pattern matches a literal '\'.
//
// Redis matches '*' by recursion with a nesting cap, which makes pathological
// patterns either slow or silently non-matching. This uses the iterative
// backtracking algorithm instead: every token other than '*' consumes exactly
// one byte, so only the most recent '*' ever needs to be retried, which bounds
// the work at O(len(pattern)*len(s)) with no recursion and no allocation.
//
// Two deliberate differences. First, stringmatchlen never matches the empty
// key against a non-empty pattern, while KEYS and SCAN special-case the
// pattern "*" to match everything. Here any pattern made only of '*' matches
// the empty key, which keeps "*" consistent with Redis and treats "**" the
// same way. Second, range ends compare as unsigned bytes, as Redis does on
// arm64; on x86 Redis compares signed chars, so a range with one end below
// 0x80 and the other above it selects different bytes there.
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	// star is the pattern index just past the most recent '*', or -1 before
	// any; starI is the byte of s that star's continuation was last tried at.
	star, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				p++
				star, starI = p, i
				continue
			case '?':
				p++
				i++
				continue
			case '[':
				if next, ok := globClass(pattern, p, s[i]); ok {
					p = next
					i++
					continue
				}
			case '\\':
				lit := p
				if p+1 < len(pattern) {
					lit = p + 1
				}
				if pattern[lit] == s[i] {
					p = lit + 1
					i++
					continue
				}
			default:
				if c == s[i] {
					p++
					i++
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		// Let the last '*' swallow one more byte and retry what follows it.
		// Earlier stars never need revisiting: anything they could absorb,
		// the last one can absorb instead.
		starI++
		p, i = star, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// globClass matches c against the set that starts with the '[' at
// pattern[open], returning the index just past the set and whether c is
// accepted. The set's extent never depends on c, which is what lets
// globMatch restart cleanly after a '*'.
func globClass(pattern string, open int, c byte) (next int, ok bool) {
	p := open + 1
	negate := p < len(pattern) && pattern[p] == '^'
	if negate {
		p++
	}
	match := false
	for p < len(pattern) {
		b := pattern[p]
		switch {
		case b == '\\' && p+1 < len(pattern):
			p++
			if pattern[p] == c {
				match = true
			}
		case b == ']':
			return p + 1, match != negate
		case p+2 < len(pattern) && pattern[p+1] == '-':
			// Redis reads the range end raw, so "[a-]" is the range ']'..'a'
			// and "[a-\]" ends at '\'.
			lo, hi := b, pattern[p+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo <= c && c <= hi {
				match = true
			}
			p += 2
		default:
			if b == c {
				match = true
			}
		}
		p++
	}
	return p, match != negate
}
