package loader

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFlightCoalescesConcurrentCalls(t *testing.T) {
	var f Flight[int]
	var calls atomic.Int32
	gate := make(chan struct{})
	fn := func() (int, error) {
		calls.Add(1)
		<-gate
		return 42, nil
	}
	const callers = 100
	var shared atomic.Int32
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			v, sh, err := f.Do(context.Background(), "k", fn)
			if err != nil || v != 42 {
				t.Errorf("Do = %d, %v; want 42, nil", v, err)
			}
			if sh {
				shared.Add(1)
			}
		})
	}
	waitFor(t, "every caller to join", func() bool { return f.Waiters("k") == callers-1 })
	close(gate)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("fn called %d times, want 1", n)
	}
	if n := shared.Load(); n != callers-1 {
		t.Errorf("%d callers shared, want %d", n, callers-1)
	}
	if n := f.Len(); n != 0 {
		t.Errorf("Len after the call = %d, want 0", n)
	}
	// A finished call is not remembered: the next caller calls again.
	if v, sh, err := f.Do(context.Background(), "k", func() (int, error) { return 7, nil }); v != 7 || sh || err != nil {
		t.Errorf("second Do = %d, %v, %v; want 7, false, nil", v, sh, err)
	}
}

func TestFlightKeysAreIndependent(t *testing.T) {
	var f Flight[string]
	gate := make(chan struct{})
	started := make(chan struct{})
	go func() {
		_, _, _ = f.Do(context.Background(), "slow", func() (string, error) {
			close(started)
			<-gate
			return "", nil
		})
	}()
	<-started
	v, sh, err := f.Do(context.Background(), "fast", func() (string, error) { return "x", nil })
	if v != "x" || sh || err != nil {
		t.Errorf("Do(fast) = %q, %v, %v while slow runs", v, sh, err)
	}
	close(gate)
}

func TestFlightWaiterLeavesCallGoesOn(t *testing.T) {
	var f Flight[int]
	gate := make(chan struct{})
	var calls atomic.Int32
	fn := func() (int, error) {
		calls.Add(1)
		<-gate
		return 1, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, _, err := f.Do(ctx, "k", fn)
		first <- err
	}()
	waitFor(t, "the call to start", func() bool { return f.Len() == 1 })
	second := make(chan int, 1)
	go func() {
		v, _, err := f.Do(context.Background(), "k", fn)
		if err != nil {
			t.Errorf("second waiter: %v", err)
		}
		second <- v
	}()
	waitFor(t, "the second waiter to join", func() bool { return f.Waiters("k") == 1 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter got %v, want context.Canceled", err)
	}
	if f.Len() != 1 {
		t.Fatal("the call stopped with its first waiter")
	}
	close(gate)
	if v := <-second; v != 1 {
		t.Errorf("second waiter got %d, want 1", v)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("fn called %d times, want 1", n)
	}
}

func TestFlightErrorReachesEveryWaiter(t *testing.T) {
	var f Flight[int]
	boom := errors.New("boom")
	gate := make(chan struct{})
	fn := func() (int, error) { <-gate; return 0, boom }
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, _, err := f.Do(context.Background(), "k", fn); !errors.Is(err, boom) {
				t.Errorf("Do = %v, want boom", err)
			}
		})
	}
	waitFor(t, "every caller to join", func() bool { return f.Waiters("k") == 9 })
	close(gate)
	wg.Wait()
}

func TestFlightPanicBecomesError(t *testing.T) {
	var f Flight[int]
	_, _, err := f.Do(context.Background(), "k", func() (int, error) { panic("loader bug") })
	if !errors.Is(err, ErrPanic) {
		t.Fatalf("Do = %v, want ErrPanic", err)
	}
	if f.Len() != 0 {
		t.Error("a panicked call is still registered")
	}
}

func TestFlightStartRunsOnceInBackground(t *testing.T) {
	var f Flight[int]
	gate := make(chan struct{})
	done := make(chan struct{})
	var calls atomic.Int32
	fn := func() (int, error) {
		calls.Add(1)
		<-gate
		close(done)
		return 0, nil
	}
	if !f.Start("k", fn) {
		t.Fatal("Start did not start a call")
	}
	if f.Start("k", fn) {
		t.Error("second Start began another call while the first runs")
	}
	close(gate)
	<-done
	waitFor(t, "the call to finish", func() bool { return f.Len() == 0 })
	if n := calls.Load(); n != 1 {
		t.Errorf("fn called %d times, want 1", n)
	}
}

func TestFlightRefusedStart(t *testing.T) {
	f := Flight[int]{Go: func(func()) bool { return false }}
	_, _, err := f.Do(context.Background(), "k", func() (int, error) { return 1, nil })
	if !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Do = %v, want ErrNotStarted", err)
	}
	if f.Len() != 0 {
		t.Error("a refused call is still registered")
	}
}
