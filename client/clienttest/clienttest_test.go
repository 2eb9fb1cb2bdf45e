package clienttest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// A worker that fails a run of requests reports that run as its error
// window, and the errors it saw; the others report none.
func TestLoadMeasuresErrorWindows(t *testing.T) {
	l := NewLoad(t, time.Minute, time.Second)
	var failing atomic.Bool
	l.Run("flaky", func(ctx context.Context, i int) error {
		if i >= 5 && i < 10 {
			failing.Store(true)
			time.Sleep(time.Millisecond)
			return errors.New("down")
		}
		return nil
	})
	l.Run("steady", func(ctx context.Context, i int) error { return nil })
	l.Warm(t, 40)
	worst, errs := l.Halt(t, "test")
	if errs != 5 {
		t.Errorf("errors = %d, want 5", errs)
	}
	if !failing.Load() || worst < 5*time.Millisecond || worst > 10*time.Second {
		t.Errorf("longest error window %v, want at least the five failing requests' 5 ms", worst)
	}
	if w := l.windows["steady"]; w != 0 {
		t.Errorf("the steady worker's window is %v, want 0", w)
	}
	l.Halt(t, "again") // a second Halt, and the cleanup's, are harmless
}

func TestParallelRunsEveryIndexOnce(t *testing.T) {
	var seen [1000]atomic.Int32
	Parallel(t, len(seen), func(i int) error { seen[i].Add(1); return nil })
	for i := range seen {
		if n := seen[i].Load(); n != 1 {
			t.Fatalf("index %d ran %d times", i, n)
		}
	}
}
