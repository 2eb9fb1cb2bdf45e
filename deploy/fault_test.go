// Package deploy holds the container image and compose file for a starling
// cluster on real (container) hosts, and the fault-injection suite that
// runs against them. The suite needs a docker daemon and runs only with
// STARLING_DOCKER_TESTS=1:
//
//	STARLING_DOCKER_TESTS=1 go test -count=1 -p 1 -timeout 10m -v ./deploy/
//
// STARLING_DOCKER_GOSSIP_PROFILE (default local) picks the nodes' gossip
// timings; lan shows real-network detection times, at a few minutes' cost.
package deploy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/starlingcache/starling/client"
	"github.com/starlingcache/starling/client/clienttest"
	"github.com/starlingcache/starling/ring"
)

// docker kill of one node under load: the survivors serve every key,
// lose no acknowledged write, and bring every key back to 2 copies; the
// node, started again, rejoins and takes its share back.
func TestDockerNodeLoss(t *testing.T) {
	d := newDCluster(t)
	const keys = 3000
	via1, via2 := d.client("starling-1"), d.client("starling-2")
	writeKeys(t, via1, keys)
	// The image's own CLI works from inside (no shell in a scratch image).
	if out := d.docker("exec", d.ids["starling-3"], "/starling", "get", "--addr", "127.0.0.1:7001", key(7)); out != value(7) {
		t.Fatalf("docker exec starling-3 /starling get %s = %q, want %q", key(7), out, value(7))
	}
	w := clienttest.NewCounters("w", 200, opTimeout)
	w.Preload(t, via1)
	distinct := int64(keys + 200)

	l := clienttest.NewLoad(t, loadMaxTime, opTimeout)
	l.Run("via1-writer", w.Writer(via1))
	l.Run("via1-reader", reader(via1, keys))
	l.Run("via2-reader", reader(via2, keys))
	l.Run("via21-reader", reader(d.client("starling-2", "starling-1"), keys))
	l.Warm(t, 300)

	t0 := time.Now()
	gone := []<-chan time.Duration{d.watchGone(t0, 60*time.Second, "starling-1", "starling-3"), d.watchGone(t0, 60*time.Second, "starling-2", "starling-3")}
	d.docker("kill", d.ids["starling-3"])
	killed := time.Since(t0) // detection below counts from the start of this command
	detect := clienttest.Latest(t, "starling-3 dropped", gone...)
	converge := d.waitCopies(t0, 90*time.Second, 2*distinct, "starling-1", "starling-2")
	time.Sleep(time.Until(t0.Add(2 * time.Second))) // load covers at least 2 s after the kill
	window, _ := l.Halt(t, "docker kill")
	for _, s := range []string{"starling-1", "starling-2"} {
		cl := d.client(s)
		if _, err := w.Check(cl, s); err != nil {
			t.Errorf("acknowledged writes lost after docker kill:\n%v", err)
		}
		readKeys(t, cl, keys, s)
	}

	t1 := time.Now()
	d.docker("start", d.ids["starling-3"])
	rejoin := d.waitView(t1, 60*time.Second, services, services...)
	back := d.waitCopies(t1, 90*time.Second, 2*distinct, services...)
	readKeys(t, d.client("starling-3"), keys, "starling-3")
	t.Logf("docker kill (took %v): dropped after %v, 2 copies after %v; restarted: rejoined after %v, 2 copies on 3 nodes after %v",
		killed.Round(time.Millisecond), detect.Round(time.Millisecond), converge.Round(time.Millisecond), rejoin.Round(time.Millisecond), back.Round(time.Millisecond))
	summary(t, "docker_kill", detect, converge, window, fmt.Sprintf("rejoin=%dms", rejoin.Milliseconds()), fmt.Sprintf("converge_after_restart=%dms", back.Milliseconds()))
}

func partKey(i int) string { return fmt.Sprintf("part-%04d", i) }

// A network partition (starling-3 cut off the cluster network): both
// sides keep serving and take writes, including conflicting writes to the
// same keys; on heal the cluster merges into one ring and every key
// converges to its newest value everywhere.
func TestDockerPartition(t *testing.T) {
	d := newDCluster(t)
	const (
		keys     = 2000 // static, read by the load
		conflict = 400  // written on both sides during the partition
		oneSided = 200  // written on one side only, per side
	)
	major, minor := d.client("starling-1"), d.client("starling-3")
	writeKeys(t, major, keys)
	clienttest.Parallel(t, conflict, func(i int) error { return set(major, partKey(i), "base") })
	wMaj, wMin := clienttest.NewCounters("maj", 200, opTimeout), clienttest.NewCounters("min", 200, opTimeout)
	wMaj.Preload(t, major)
	wMin.Preload(t, major)
	distinct := int64(keys + conflict + 2*oneSided + 400)

	l := clienttest.NewLoad(t, loadMaxTime, opTimeout)
	l.Run("majority-writer", wMaj.Writer(major))
	l.Run("majority-reader", reader(d.client("starling-2"), keys))
	l.Run("minority-writer", wMin.Writer(minor))
	l.Warm(t, 300)

	t0 := time.Now()
	d.docker("network", "disconnect", d.mesh, d.ids["starling-3"])
	detect := clienttest.Latest(t, "partition seen",
		d.watchGone(t0, 60*time.Second, "starling-1", "starling-3"),
		d.watchGone(t0, 60*time.Second, "starling-2", "starling-3"),
		d.watch(t0, 60*time.Second, "starling-3", func(alive []string) bool { return slices.Equal(alive, []string{"starling-3"}) }))

	// Each side serves what it holds: the majority every key, the
	// minority those it had a copy of.
	var held, missing int
	for i := range keys {
		v, err := get(minor, key(i))
		switch {
		case err == nil && v == value(i):
			held++
		case errors.Is(err, client.ErrNotFound):
			missing++
		default:
			t.Fatalf("minority side: get %s = %q, %v", key(i), v, err)
		}
	}
	readKeys(t, major, keys, "majority")

	// Conflicting writes: each key gets one value per side, the later on
	// alternating sides; one-sided keys only one.
	write := func(cl *client.Client, side, k, v string) error {
		for attempt := 1; ; attempt++ {
			err := set(cl, k, v)
			if err == nil {
				return nil
			}
			if attempt == 5 {
				return fmt.Errorf("%s side: set %s: %w", side, k, err)
			}
		}
	}
	sides := func(i int) (first, second *client.Client, fs, ss string) {
		if i%2 == 0 {
			return major, minor, "majority", "minority"
		}
		return minor, major, "minority", "majority"
	}
	clienttest.Parallel(t, conflict, func(i int) error {
		cl, _, side, _ := sides(i)
		return write(cl, side, partKey(i), side+"-older")
	})
	time.Sleep(50 * time.Millisecond) // every "newer" write is clearly later than every "older" one
	clienttest.Parallel(t, conflict, func(i int) error {
		_, cl, _, side := sides(i)
		return write(cl, side, partKey(i), side+"-newer")
	})
	clienttest.Parallel(t, oneSided, func(i int) error {
		if err := write(major, "majority", fmt.Sprintf("only-maj-%04d", i), "majority"); err != nil {
			return err
		}
		return write(minor, "minority", fmt.Sprintf("only-min-%04d", i), "minority")
	})
	newest := func(i int) string {
		_, _, _, second := sides(i)
		return second + "-newer"
	}
	// During the partition each side reads its own latest.
	clienttest.Parallel(t, conflict, func(i int) error {
		for _, c := range []struct {
			cl   *client.Client
			side string
		}{{major, "majority"}, {minor, "minority"}} {
			v, err := get(c.cl, partKey(i))
			want := c.side + "-older"
			if _, _, _, second := sides(i); second == c.side {
				want = c.side + "-newer"
			}
			if err != nil || v != want {
				return fmt.Errorf("during the partition, %s side read %s = %q, %v; want %q", c.side, partKey(i), v, err, want)
			}
		}
		return nil
	})
	split := time.Since(t0)

	t1 := time.Now()
	d.docker("network", "connect", "--ip", d.prefix+".13", "--alias", "mesh-3", "--alias", "seeds", "--alias", "starling-3", d.mesh, d.ids["starling-3"])
	merge := d.waitView(t1, 90*time.Second, services, services...)

	// Converged: every key reads its newest value through every node, and
	// every key is at 2 copies.
	clients := map[string]*client.Client{"starling-1": major, "starling-2": d.client("starling-2"), "starling-3": minor}
	deadline := time.Now().Add(45 * time.Second)
	full, err := ring.New(ring.DefaultConfig(), services)
	if err != nil {
		t.Fatal(err)
	}
	var staleSeen int
	var newestAt time.Duration
	for {
		var wrong []string
		for _, s := range services {
			for i := range conflict {
				if v, err := get(clients[s], partKey(i)); err != nil || v != newest(i) {
					wrong = append(wrong, fmt.Sprintf("%s via %s = %q (%v)", partKey(i), s, v, err))
				}
			}
			for i := range oneSided {
				for _, side := range []string{"maj", "min"} {
					k := fmt.Sprintf("only-%s-%04d", side, i)
					want := map[string]string{"maj": "majority", "min": "minority"}[side]
					if v, err := get(clients[s], k); err != nil || v != want {
						wrong = append(wrong, fmt.Sprintf("%s via %s = %q (%v)", k, s, v, err))
					}
				}
			}
		}
		if len(wrong) == 0 {
			newestAt = time.Since(t1)
			break
		}
		staleSeen += len(wrong)
		if time.Now().After(deadline) {
			t.Errorf("45s after the heal, %d reads still not the newest value; first: %s", len(wrong), strings.Join(wrong[:min(5, len(wrong))], "; "))
			for _, w := range wrong[:min(5, len(wrong))] {
				k, _, _ := strings.Cut(w, " ")
				t.Logf("  %s: owners %v; copies: %s", k, full.Owners(k, 2), d.copiesOf(k))
			}
			t.FailNow()
		}
		time.Sleep(100 * time.Millisecond)
	}
	copies := d.waitCopies(t1, 90*time.Second, 2*distinct, services...)
	window, _ := l.Halt(t, "partition")
	// Every acknowledged write reads back through every node once the
	// copies made on either side, and the writes made while the rings
	// were merging, have reached their owners (a replica that missed a
	// write while cut off gets it from a hint or the next pass).
	var acked time.Duration
	for ackDeadline := time.Now().Add(45 * time.Second); ; {
		var errs []error
		for _, s := range services {
			for _, w := range []*clienttest.Counters{wMaj, wMin} {
				if _, err := w.Check(clients[s], s); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if len(errs) == 0 {
			acked = time.Since(t1)
			break
		}
		if time.Now().After(ackDeadline) {
			t.Errorf("acknowledged writes lost across the partition (45s after the heal):\n%v", errors.Join(errs...))
			for _, w := range []*clienttest.Counters{wMaj, wMin} {
				for j := range w.Len() {
					acked, at := w.Acked(j)
					if v, err := get(major, w.Key(j)); err == nil && v != fmt.Sprint(acked) {
						t.Logf("  %s: acknowledged %d at %v after the partition began (%v after the heal); copies: %s",
							w.Key(j), acked, at.Sub(t0).Round(time.Millisecond), at.Sub(t1).Round(time.Millisecond), d.copiesOf(w.Key(j)))
					}
				}
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, s := range services {
		readKeys(t, clients[s], keys, s)
	}
	converge := max(newestAt, copies)
	t.Logf("partition: both sides saw it after %v; the minority held %d of %d keys (%d not); split for %v; merged into one ring %v after the heal; newest value everywhere after %v (%d non-newest reads on the way), 2 copies after %v, every acknowledged write readable after %v",
		detect.Round(time.Millisecond), held, keys, missing, split.Round(time.Millisecond), merge.Round(time.Millisecond), newestAt.Round(time.Millisecond), staleSeen, copies.Round(time.Millisecond), acked.Round(time.Millisecond))
	summary(t, "docker_partition", detect, converge, window, fmt.Sprintf("merge=%dms", merge.Milliseconds()), fmt.Sprintf("newest_everywhere=%dms", newestAt.Milliseconds()))
}

// A rolling restart (docker restart: SIGTERM, graceful hand-off and
// leave, start again) of every node in turn: every key stays readable
// throughout, and nothing acknowledged is lost.
func TestDockerRollingRestart(t *testing.T) {
	d := newDCluster(t)
	const keys = 3000
	writeKeys(t, d.client("starling-1"), keys)
	w := clienttest.NewCounters("roll", 200, opTimeout)
	w.Preload(t, d.client("starling-1"))
	distinct := int64(keys + 200)

	// Each client knows every node, in a different order, so whichever is
	// restarting there is another way in.
	l := clienttest.NewLoad(t, loadMaxTime, opTimeout)
	l.Run("reader-123", reader(d.client("starling-1", "starling-2", "starling-3"), keys))
	l.Run("reader-231", reader(d.client("starling-2", "starling-3", "starling-1"), keys))
	l.Run("reader-312", reader(d.client("starling-3", "starling-1", "starling-2"), keys))
	l.Run("writer-321", w.Writer(d.client("starling-3", "starling-2", "starling-1")))
	l.Warm(t, 300)

	var detect, converge time.Duration
	for _, s := range services {
		others := slices.DeleteFunc(slices.Clone(services), func(o string) bool { return o == s })
		t0 := time.Now()
		gone := []<-chan time.Duration{d.watchGone(t0, 90*time.Second, others[0], s), d.watchGone(t0, 90*time.Second, others[1], s)}
		d.docker("restart", "-t", "40", d.ids[s])
		restarted := time.Since(t0)
		left := clienttest.Latest(t, s+" left", gone...)
		rejoin := d.waitView(t0, 90*time.Second, services, services...)
		back := d.waitCopies(t0, 90*time.Second, 2*distinct, services...)
		detect, converge = max(detect, left), max(converge, back)
		t.Logf("%s: docker restart took %v, the others dropped it after %v, all 3 see each other after %v, 2 copies after %v",
			s, restarted.Round(time.Millisecond), left.Round(time.Millisecond), rejoin.Round(time.Millisecond), back.Round(time.Millisecond))
	}
	window, errs := l.Halt(t, "rolling restart")
	if errs > 0 {
		t.Errorf("%d requests failed during the rolling restart (every key must stay readable)", errs)
	}
	for _, s := range services {
		cl := d.client(s)
		if _, err := w.Check(cl, s); err != nil {
			t.Errorf("acknowledged writes lost in the rolling restart:\n%v", err)
		}
		readKeys(t, cl, keys, s)
	}
	summary(t, "docker_rolling_restart", detect, converge, window, fmt.Sprintf("failed_requests=%d", errs))
}
