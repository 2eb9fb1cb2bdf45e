package bench

import (
	"fmt"
	"math/rand/v2"
)

// KeyGen picks which key the next request uses, as an index in [0, keys).
// Each worker owns one; none is safe for concurrent use.
type KeyGen interface {
	Next() int
}

// Uniform picks every key with the same probability.
type Uniform struct {
	r *rand.Rand
	n int
}

// NewUniform returns a Uniform over n keys whose sequence depends only on
// seed.
func NewUniform(n int, seed uint64) *Uniform {
	return &Uniform{r: newRand(seed), n: n}
}

// Next returns the next key index.
func (u *Uniform) Next() int { return u.r.IntN(u.n) }

// Zipf picks key k with probability proportional to 1/(k+1)^s: a few hot
// keys take most requests, as in real caches. s = 1.01 sends about 8% of
// requests to the hottest of 100,000 keys, close to YCSB's zipfian(0.99).
type Zipf struct {
	z *rand.Zipf
}

// NewZipf returns a Zipf over n keys with exponent s (> 1) whose sequence
// depends only on seed.
func NewZipf(n int, s float64, seed uint64) *Zipf {
	return &Zipf{z: rand.NewZipf(newRand(seed), s, 1, uint64(n-1))}
}

// Next returns the next key index; 0 is the hottest.
func (z *Zipf) Next() int { return int(z.z.Uint64()) }

func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// KeyName returns the name of key i, in redis-benchmark's shape
// (key:__rand_int__ with 12 digits), so native and RESP runs use the same
// keys.
func KeyName(i int) string { return fmt.Sprintf("key:%012d", i) }
