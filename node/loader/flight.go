// Package loader is the core of read-through caching, kept apart from the
// cluster so it can be tested on its own: a single-flight group whose calls
// outlive the callers waiting for them, and the small envelope a loaded
// result is stored in.
package loader

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Errors returned by Flight.
var (
	// ErrNotStarted reports that Flight.Go refused to start a call (the
	// program is shutting down); every caller waiting for it gets it.
	ErrNotStarted = errors.New("loader: call not started")
	// ErrPanic wraps the value a call's function panicked with: a loader
	// that panics fails its waiters instead of crashing the process.
	ErrPanic = errors.New("loader: call panicked")
)

// Flight runs at most one call per key at a time: callers asking for a key
// while its call is running wait for that call's result instead of making
// another. Unlike a plain single flight, the call runs in a goroutine of its
// own, so a caller whose context ends returns at once while the call goes
// on for the others; the function therefore receives no caller's context
// and must bound itself (it brings its own, with its own timeout).
//
// The zero Flight is ready to use. A Flight must not be copied after first
// use.
type Flight[V any] struct {
	// Go starts fn in a new goroutine and reports whether it did. Nil means
	// `go fn()`. A node passes one that tracks the goroutine, so that
	// shutdown waits for running calls, and that refuses once it is
	// shutting down.
	Go func(fn func()) bool

	mu    sync.Mutex
	calls map[string]*call[V]
}

// call is one running (or just finished) call and its result, which is
// written once, before done is closed.
type call[V any] struct {
	done    chan struct{}
	waiters int // callers that joined after the first; guarded by Flight.mu
	val     V
	err     error
}

// Do returns fn's result for key, calling fn only if no call for key is
// running; otherwise it waits for the running one and shared is true. If
// ctx ends first, Do returns ctx's error (shared says whether it had joined
// another's call); the call itself goes on.
func (f *Flight[V]) Do(ctx context.Context, key string, fn func() (V, error)) (v V, shared bool, err error) {
	c, started := f.begin(key, fn)
	select {
	case <-c.done:
		return c.val, !started, c.err
	case <-ctx.Done():
		return v, !started, ctx.Err()
	}
}

// Start begins a call of fn for key unless one is already running, and
// returns at once without waiting for it: a background refresh. It reports
// whether it began a call.
func (f *Flight[V]) Start(key string, fn func() (V, error)) bool {
	_, started := f.begin(key, fn)
	return started
}

// Len returns the number of calls running.
func (f *Flight[V]) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// Waiters returns how many callers joined key's running call after the
// one that started it (whether or not they are still waiting), or 0 if no
// call for key is running. Tests use it to know a burst has coalesced.
func (f *Flight[V]) Waiters(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.calls[key]; ok {
		return c.waiters
	}
	return 0
}

// begin returns key's running call, or registers and starts a new one.
func (f *Flight[V]) begin(key string, fn func() (V, error)) (*call[V], bool) {
	f.mu.Lock()
	if c, ok := f.calls[key]; ok {
		c.waiters++
		f.mu.Unlock()
		return c, false
	}
	if f.calls == nil {
		f.calls = map[string]*call[V]{}
	}
	c := &call[V]{done: make(chan struct{})}
	f.calls[key] = c
	f.mu.Unlock()

	spawn := f.Go
	if spawn == nil {
		spawn = func(fn func()) bool { go fn(); return true }
	}
	if !spawn(func() { f.run(key, c, fn) }) {
		// Nobody else can have written c: finish it with the refusal.
		var zero V
		f.finish(key, c, zero, ErrNotStarted)
	}
	return c, true
}

// run calls fn and publishes its result, turning a panic into an error.
func (f *Flight[V]) run(key string, c *call[V], fn func() (V, error)) {
	var (
		v   V
		err error
	)
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w: %v", ErrPanic, r)
			}
		}()
		v, err = fn()
	}()
	f.finish(key, c, v, err)
}

// finish removes c from the running calls, then wakes its waiters. The
// order matters to callers that check a cache before joining: once fn has
// stored its result and c is gone, a new call for key finds the result.
func (f *Flight[V]) finish(key string, c *call[V], v V, err error) {
	c.val, c.err = v, err
	f.mu.Lock()
	if f.calls[key] == c {
		delete(f.calls, key)
	}
	f.mu.Unlock()
	close(c.done)
}
