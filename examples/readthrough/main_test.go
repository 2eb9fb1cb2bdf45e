package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServiceServesItemsThroughTheGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"-http", "127.0.0.1:0", "-seed", "100", "-negative-ttl", "1h"}, io.Discard, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("service stopped: %v", err)
	case <-ctx.Done():
		t.Fatal("service did not start")
	}
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for range 5 {
		if code, body := get("/items/7"); code != http.StatusOK || !strings.Contains(body, `"item 7"`) {
			t.Fatalf("GET /items/7 = %d %q", code, body)
		}
		if code, _ := get("/items/no-such-item"); code != http.StatusNotFound {
			t.Fatalf("GET /items/no-such-item = %d, want 404", code)
		}
	}
	_, body := get("/stats")
	var st struct {
		Queries int64 `json:"db_queries"`
		Group   struct{ Gets, Hits, Loads int64 }
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("stats %q: %v", body, err)
	}
	if st.Queries != 2 || st.Group.Gets != 10 || st.Group.Loads != 2 || st.Group.Hits != 8 {
		t.Errorf("stats %s: want 2 queries and loads, 10 gets, 8 hits", body)
	}
	if code, _ := get("/direct/items/7"); code != http.StatusOK {
		t.Errorf("GET /direct/items/7 = %d", code)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
}

func TestBenchRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	args := []string{"-bench", "-bench-clients", "4", "-bench-duration", "200ms", "-bench-keys", "50", "-bench-ttl", "100ms", "-bench-nodes", "2"}
	if err := run(ctx, args, &out, nil); err != nil {
		t.Fatalf("bench: %v\n%s", err, out.String())
	}
	for _, want := range []string{"database only", "through the group", "queries/request"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bench output lacks %q:\n%s", want, out.String())
		}
	}
	t.Log("\n" + out.String())
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-no-such-flag"}, {"extra"}, {"-bench", "-bench-zipf", "1"}} {
		if err := run(context.Background(), args, io.Discard, nil); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
