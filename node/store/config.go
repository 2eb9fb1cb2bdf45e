package store

import (
	"errors"
	"fmt"
	"time"
)

// Eviction policy names accepted by Config.Policy.
const (
	// PolicyS3FIFO is S3-FIFO: a small probationary FIFO, a main FIFO with
	// reinsertion and a ghost filter of recently evicted keys. It beats LRU
	// on skewed and scan-polluted workloads and maps onto the append-only
	// arena without fragmentation, so it is the default.
	PolicyS3FIFO = "s3fifo"
	// PolicyLRU is least-recently-used, kept as the baseline that the other
	// policies are measured against.
	PolicyLRU = "lru"
)

// Config bounds and tunes a Store. Build one with DefaultConfig and change
// what you need; New validates it.
type Config struct {
	// MaxMemory bounds the bytes the store holds: keys, values, entry
	// headers, the hash index and arena slack are all counted. When a write
	// would exceed it the store evicts.
	MaxMemory int64

	// MaxKeySize is the largest key accepted, in bytes. Larger keys are
	// refused with ErrKeyTooLarge.
	MaxKeySize int

	// MaxValueSize is the largest value accepted, in bytes. Larger values
	// are refused with ErrValueTooLarge.
	MaxValueSize int

	// Shards is the number of independently locked partitions, a power of
	// two. More shards mean less lock contention but a smaller memory share
	// per shard; 0 picks a value from MaxMemory.
	Shards int

	// Policy selects the eviction policy: PolicyS3FIFO (default) or
	// PolicyLRU. Empty means the default.
	Policy string

	// SweepInterval is how often the background sweeper visits a slice of
	// the shards to reclaim expired entries. Each visit does a bounded
	// amount of work, so the store never pauses for a whole-store scan.
	SweepInterval time.Duration

	// Now returns the current time in Unix nanoseconds. Tests inject a fake
	// clock to check TTL behaviour deterministically; nil means
	// time.Now().UnixNano.
	Now func() int64
}

// Limits on configuration values.
const (
	// MinMemory is the smallest MaxMemory accepted: below it a shard could
	// not hold even a handful of entries.
	MinMemory = 1 << 20
	// maxKeyLimit is the hard upper bound for MaxKeySize (24-bit length
	// field in the entry header).
	maxKeyLimit = 1<<24 - 1
	// maxValueLimit is the hard upper bound for MaxValueSize.
	maxValueLimit = 1 << 30
	// maxShardMemory bounds one shard's share (35-bit log positions).
	maxShardMemory = 16 << 30
)

// DefaultConfig returns a 256 MiB store with 64 KiB keys, 1 MiB values, the
// S3-FIFO policy and a 100 ms sweep cadence.
func DefaultConfig() Config {
	return Config{
		MaxMemory:     256 << 20,
		MaxKeySize:    64 << 10,
		MaxValueSize:  1 << 20,
		Shards:        0,
		Policy:        PolicyS3FIFO,
		SweepInterval: 100 * time.Millisecond,
	}
}

// Validate reports the first problem that would stop New, so a bad flag is
// caught when the process starts.
func (c Config) Validate() error {
	if c.MaxMemory < MinMemory {
		return fmt.Errorf("%w: max memory %d is below the minimum %d", ErrInvalidConfig, c.MaxMemory, MinMemory)
	}
	if c.MaxKeySize <= 0 || c.MaxKeySize > maxKeyLimit {
		return fmt.Errorf("%w: max key size %d must be in [1, %d]", ErrInvalidConfig, c.MaxKeySize, maxKeyLimit)
	}
	if c.MaxValueSize < 0 || c.MaxValueSize > maxValueLimit {
		return fmt.Errorf("%w: max value size %d must be in [0, %d]", ErrInvalidConfig, c.MaxValueSize, maxValueLimit)
	}
	if c.Shards < 0 || c.Shards&(c.Shards-1) != 0 || c.Shards > 1<<16 {
		return fmt.Errorf("%w: shards %d must be 0 or a power of two up to 65536", ErrInvalidConfig, c.Shards)
	}
	if c.Shards > 0 && c.MaxMemory/int64(c.Shards) > maxShardMemory {
		return fmt.Errorf("%w: %d shards give each more than %d bytes; use more shards", ErrInvalidConfig, c.Shards, int64(maxShardMemory))
	}
	switch c.Policy {
	case "", PolicyS3FIFO, PolicyLRU:
	default:
		return fmt.Errorf("%w: unknown eviction policy %q (want %q or %q)", ErrInvalidConfig, c.Policy, PolicyS3FIFO, PolicyLRU)
	}
	if c.SweepInterval < 0 {
		return fmt.Errorf("%w: negative sweep interval", ErrInvalidConfig)
	}
	return nil
}

// Errors returned by the store. Size errors wrap ErrTooLarge so callers can
// map both to one protocol error.
var (
	// ErrInvalidConfig wraps every problem reported by Config.Validate.
	ErrInvalidConfig = errors.New("invalid store config")
	// ErrTooLarge is the general class of oversized keys and values.
	ErrTooLarge = errors.New("too large")
	// ErrKeyTooLarge refuses a key longer than Config.MaxKeySize.
	ErrKeyTooLarge = fmt.Errorf("key %w", ErrTooLarge)
	// ErrValueTooLarge refuses a value longer than Config.MaxValueSize, or an
	// entry that could not fit in one shard's memory share.
	ErrValueTooLarge = fmt.Errorf("value %w", ErrTooLarge)
	// ErrNotInteger is returned by IncrBy when the stored value is not a
	// base-10 signed 64-bit integer.
	ErrNotInteger = errors.New("value is not an integer")
	// ErrOverflow is returned by IncrBy when the result would not fit in a
	// signed 64-bit integer.
	ErrOverflow = errors.New("increment would overflow")
	// ErrNotFound is returned by operations that need an existing key.
	ErrNotFound = errors.New("key not found")
	// ErrExists is returned when an if-absent write finds a live key.
	ErrExists = errors.New("key exists")
	// ErrVersionMismatch is returned when a versioned write loses against the
	// stored entry's version.
	ErrVersionMismatch = errors.New("version mismatch")
)
