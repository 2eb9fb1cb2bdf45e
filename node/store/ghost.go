package store

import "math/bits"

// ghost remembers the hashes of keys recently evicted from the small queue,
// so that a key that comes back soon after is admitted straight into the
// main queue (S3-FIFO's ghost queue). Instead of a FIFO of hashes (8+ bytes
// per remembered key) it is two generations of blocked Bloom filters: about
// one byte per remembered key and a few percent false positives, which only
// cost an occasional early promotion.
type ghost struct {
	cur, old []uint64 // filter words; one 64-bit block per key
	added    int      // insertions into cur
	capacity int      // keys remembered per generation
}

// ghostBitsPerKey sizes each generation.
const ghostBitsPerKey = 8

func (g *ghost) reset(capacity int) {
	capacity = max(capacity, 64)
	words := max(capacity*ghostBitsPerKey/64, 1)
	words = 1 << bits.Len(uint(words-1))
	g.cur = make([]uint64, words)
	g.old = make([]uint64, words)
	g.added = 0
	g.capacity = capacity
}

func (g *ghost) bytes() int64 { return int64(len(g.cur)+len(g.old)) * 8 }

// block returns the word index and the 4-bit mask for h.
func ghostBlock(h uint64, words int) (int, uint64) {
	w := int((h >> 32) & uint64(words-1))
	m := uint64(1)<<(h&63) | uint64(1)<<((h>>6)&63) | uint64(1)<<((h>>12)&63) | uint64(1)<<((h>>18)&63)
	return w, m
}

func (g *ghost) add(h uint64) {
	if len(g.cur) == 0 {
		return
	}
	if g.added >= g.capacity {
		g.cur, g.old = g.old, g.cur
		clear(g.cur)
		g.added = 0
	}
	w, m := ghostBlock(h, len(g.cur))
	g.cur[w] |= m
	g.added++
}

func (g *ghost) contains(h uint64) bool {
	if len(g.cur) == 0 {
		return false
	}
	w, m := ghostBlock(h, len(g.cur))
	return g.cur[w]&m == m || g.old[w]&m == m
}
