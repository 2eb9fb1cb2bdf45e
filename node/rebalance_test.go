package node

import (
	"fmt"
	"slices"
	"testing"

	"github.com/starlingcache/starling/ring"
)

func TestHandoffTargets(t *testing.T) {
	for _, tc := range []struct {
		name        string
		self        string
		prev, cur   []string
		wantTargets []string
		wantDrop    bool
	}{
		{"unchanged owners: nothing to do", "a", []string{"a", "b"}, []string{"a", "b"}, nil, false},
		{"replica crashed: primary re-replicates to the successor", "a", []string{"a", "b"}, []string{"a", "c"}, []string{"c"}, false},
		{"primary crashed: the replica re-replicates", "b", []string{"a", "b"}, []string{"b", "c"}, []string{"c"}, false},
		{"a joiner takes over as primary", "a", []string{"a", "b"}, []string{"d", "a"}, []string{"d"}, false},
		{"ownership lost: hand to the joiner, then drop", "b", []string{"a", "b"}, []string{"d", "a"}, []string{"d"}, true},
		{"leaving with one replica", "a", []string{"a"}, []string{"b"}, []string{"b"}, true},
		{"leaving with two replicas", "a", []string{"a", "b"}, []string{"b", "c"}, []string{"c"}, true},
		{"stand-in copy goes to every owner", "x", []string{"a", "b"}, []string{"a", "b"}, []string{"a", "b"}, true},
		{"shrunk below the replica count", "a", []string{"a", "b"}, []string{"b"}, nil, true},
		{"fresh node with no previous ring", "a", nil, []string{"a", "b"}, []string{"b"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, drop := handoffTargets(tc.self, tc.prev, tc.cur)
			if !slices.Equal(got, tc.wantTargets) || drop != tc.wantDrop {
				t.Fatalf("handoffTargets(%s, %v, %v) = %v, drop=%v; want %v, drop=%v",
					tc.self, tc.prev, tc.cur, got, drop, tc.wantTargets, tc.wantDrop)
			}
		})
	}
}

// TestHandoffPlanOnJoin checks the planner over a real ring: when a fourth
// node joins three, every key it now owns or replicates is sent to it by
// exactly the holders that must, and about a quarter of the keys move.
func TestHandoffPlanOnJoin(t *testing.T) {
	const keys, replicas = 20000, 2
	old, _ := ring.New(ring.DefaultConfig(), []string{"n1", "n2", "n3"})
	cur, _ := ring.New(ring.DefaultConfig(), []string{"n1", "n2", "n3", "n4"})
	moved, sentToN4 := 0, 0
	for i := range keys {
		key := fmt.Sprintf("key-%d", i)
		prevOwners, owners := old.Owners(key, replicas), cur.Owners(key, replicas)
		if prevOwners[0] != owners[0] {
			moved++
		}
		received := map[string]int{}
		for _, holder := range prevOwners {
			targets, drop := handoffTargets(holder, prevOwners, owners)
			for _, tg := range targets {
				received[tg]++
			}
			if drop == slices.Contains(owners, holder) {
				t.Fatalf("%s: holder %s drop=%v but owns=%v", key, holder, drop, slices.Contains(owners, holder))
			}
		}
		for _, o := range owners {
			had := slices.Contains(prevOwners, o)
			if !had && received[o] == 0 {
				t.Fatalf("%s: new owner %s receives nothing", key, o)
			}
			if had && received[o] != 0 {
				t.Fatalf("%s: %s already had the key but is sent it again", key, o)
			}
		}
		for tg := range received {
			if tg != "n4" {
				t.Fatalf("%s: sent to %s, which is not the joiner", key, tg)
			}
			sentToN4++
		}
	}
	frac := float64(moved) / keys
	t.Logf("primary moved for %.3f of keys (ideal 0.25); %d copies sent to the joiner", frac, sentToN4)
	if frac < 0.25/1.2 || frac > 0.25*1.2 {
		t.Fatalf("moved fraction %.3f not within 1.2x of 0.25", frac)
	}
}
