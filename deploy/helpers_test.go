package deploy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starlingcache/starling/client"
	"github.com/starlingcache/starling/client/clienttest"
	"github.com/starlingcache/starling/transport"
)

// The harness: build the static binary and a FROM-scratch image once,
// bring compose.yaml up under a unique project name per test, drive the
// nodes from the host through their published data ports, and inject
// faults with docker itself (kill, network disconnect/connect, restart).

const (
	opTimeout   = 2 * time.Second // one request of the tests' clients
	loadMaxTime = 4 * time.Minute // every load worker
	dockerLimit = 2 * time.Minute // one docker or compose command
)

var services = []string{"starling-1", "starling-2", "starling-3"}

var (
	imageOnce sync.Once
	imageTag  string
	imageErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if imageTag != "" {
		_ = exec.Command("docker", "rmi", "-f", imageTag).Run()
	}
	os.Exit(code)
}

// run executes a command with a time limit and returns its combined output.
func run(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// requireDocker skips the test unless the suite is asked for and docker
// and a compose implementation work; it returns the compose command.
func requireDocker(t *testing.T) []string {
	t.Helper()
	if os.Getenv("STARLING_DOCKER_TESTS") != "1" {
		t.Skip("docker fault suite skipped: set STARLING_DOCKER_TESTS=1 to run it (needs a docker daemon and docker compose or docker-compose)")
	}
	if testing.Short() {
		t.Skip("docker fault suite skipped in -short mode")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skipf("docker fault suite skipped: no docker on PATH: %v", err)
	}
	if _, err := run(nil, "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Skipf("docker fault suite skipped: docker is not usable: %v", err)
	}
	if _, err := run(nil, "docker", "compose", "version"); err == nil {
		return []string{"docker", "compose"}
	}
	if _, err := run(nil, "docker-compose", "version"); err == nil {
		return []string{"docker-compose"}
	}
	t.Skip("docker fault suite skipped: neither `docker compose` nor `docker-compose` works")
	return nil
}

// image builds the static binary and the image once per test run.
func image(t *testing.T) string {
	t.Helper()
	imageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "starling-image-")
		if err != nil {
			imageErr = err
			return
		}
		defer os.RemoveAll(dir)
		build := exec.Command("go", "build", "-o", filepath.Join(dir, "starling"), "./cmd/starling")
		build.Dir = ".."
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			imageErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		df, err := os.ReadFile("Dockerfile")
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644)
		}
		if err != nil {
			imageErr = err
			return
		}
		tag := fmt.Sprintf("starling-fault-%08x:test", rand.Uint32())
		if _, err := run(nil, "docker", "build", "-q", "-t", tag, dir); err != nil {
			imageErr = err
			return
		}
		imageTag = tag
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imageTag
}

// dcluster is one compose project: three nodes on their own network.
type dcluster struct {
	t       *testing.T
	compose []string
	project string
	env     []string
	prefix  string            // mesh network's first three octets
	data    map[string]string // service -> published data address on the host
	ids     map[string]string // service -> container ID
	mesh    string            // mesh network ID
	tc      *transport.Client // for per-node stats
	profile string
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// newDCluster brings compose.yaml up under a unique project name and
// waits until every node sees the other two. Everything the project
// created is removed when the test ends.
func newDCluster(t *testing.T) *dcluster {
	t.Helper()
	compose := requireDocker(t)
	img := image(t)
	d := &dcluster{
		t: t, compose: compose, project: fmt.Sprintf("starlingfault%08x", rand.Uint32()),
		data: map[string]string{}, ids: map[string]string{}, profile: "local",
	}
	if p := os.Getenv("STARLING_DOCKER_GOSSIP_PROFILE"); p != "" {
		d.profile = p
	}
	env := []string{"STARLING_IMAGE=" + img, "STARLING_GOSSIP_PROFILE=" + d.profile, "STARLING_REPLICAS=2"}
	for i, s := range services {
		port := freePort(t)
		d.data[s] = "127.0.0.1:" + port
		env = append(env, fmt.Sprintf("STARLING_PORT_%d=%s", i+1, port), fmt.Sprintf("STARLING_RESP_PORT_%d=%s", i+1, freePort(t)))
	}
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := d.composeRun("logs", "--no-color", "--tail", "40"); err == nil {
				t.Logf("compose logs (tail):\n%s", out)
			}
		}
		if _, err := d.composeRun("down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	// The mesh network needs a fixed /24 (static addresses, see
	// compose.yaml); pick one at random and move on if it is taken.
	var err error
	for attempt := 0; attempt < 6; attempt++ {
		d.prefix = fmt.Sprintf("172.31.%d", 100+rand.IntN(150))
		d.env = append(append(os.Environ(), env...), "STARLING_MESH_PREFIX="+d.prefix)
		var out string
		if out, err = d.composeRun("up", "-d", "--no-build"); err == nil {
			break
		}
		_, _ = d.composeRun("down", "-v", "--remove-orphans", "-t", "1")
		if !strings.Contains(strings.ToLower(out), "overlap") {
			t.Fatal(err)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range services {
		id, err := d.composeRun("ps", "-q", s)
		if err != nil || id == "" {
			t.Fatalf("container of %s: %q, %v", s, id, err)
		}
		d.ids[s] = id
	}
	d.mesh, err = run(nil, "docker", "network", "ls", "-q", "--filter", "label=com.docker.compose.project="+d.project,
		"--filter", "label=com.docker.compose.network=mesh")
	if err != nil || d.mesh == "" || strings.Contains(d.mesh, "\n") {
		t.Fatalf("mesh network of %s: %q, %v", d.project, d.mesh, err)
	}
	tcfg := transport.DefaultConfig()
	tcfg.CallTimeout = opTimeout
	if d.tc, err = transport.NewClient(tcfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.tc.Close() })
	took := d.waitView(time.Now(), 60*time.Second, services, services...)
	t.Logf("compose project %s (gossip profile %s, mesh %s.0/24) up; all 3 nodes see each other after %v",
		d.project, d.profile, d.prefix, took.Round(time.Millisecond))
	return d
}

func (d *dcluster) composeRun(args ...string) (string, error) {
	full := append(append(slices.Clone(d.compose[1:]), "-p", d.project, "-f", "compose.yaml"), args...)
	return run(d.env, d.compose[0], full...)
}

// docker runs a docker command and fails the test if it fails.
func (d *dcluster) docker(args ...string) string {
	d.t.Helper()
	out, err := run(nil, "docker", args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// client returns a plain (not smart) client that sends every request to
// the first of the services' published ports that answers: that node
// routes it over the cluster's own network, which the host cannot see.
func (d *dcluster) client(svcs ...string) *client.Client {
	d.t.Helper()
	cfg := client.DefaultConfig()
	cfg.Smart = false
	cfg.Timeout = opTimeout
	cfg.Addrs = nil
	for _, s := range svcs {
		cfg.Addrs = append(cfg.Addrs, d.data[s])
	}
	cl, err := client.New(cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { cl.Close() })
	return cl
}

func aliveNames(ctx context.Context, cl *client.Client) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	ms, err := cl.Members(ctx)
	if err != nil {
		return nil, err
	}
	var alive []string
	for _, m := range ms {
		if m.State == "alive" {
			alive = append(alive, m.Name)
		}
	}
	sort.Strings(alive)
	return alive, nil
}

// waitView waits until each of svcs reports exactly want alive; it returns
// the time from since.
func (d *dcluster) waitView(since time.Time, timeout time.Duration, want []string, svcs ...string) time.Duration {
	d.t.Helper()
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(timeout)
	for _, s := range svcs {
		cl := d.client(s)
		for {
			alive, err := aliveNames(context.Background(), cl)
			if err == nil && slices.Equal(alive, want) {
				break
			}
			if time.Now().After(deadline) {
				d.t.Fatalf("%s sees alive %v (err %v), want %v within %v", s, alive, err, want, timeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return time.Since(since)
}

// watch polls svc's view from now on and yields, once, how long after t0
// ok first accepted the alive members it reports (-1 after timeout).
func (d *dcluster) watch(t0 time.Time, timeout time.Duration, svc string, ok func(alive []string) bool) <-chan time.Duration {
	cl := d.client(svc)
	out := make(chan time.Duration, 1)
	go func() {
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			if alive, err := aliveNames(context.Background(), cl); err == nil && ok(alive) {
				out <- time.Since(t0)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		out <- -1
	}()
	return out
}

func (d *dcluster) watchGone(t0 time.Time, timeout time.Duration, svc, victim string) <-chan time.Duration {
	return d.watch(t0, timeout, svc, func(alive []string) bool { return !slices.Contains(alive, victim) })
}

// entries returns the number of entries svc holds, asked directly.
func (d *dcluster) entries(svc string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	resp, err := d.tc.Call(ctx, d.data[svc], &transport.Request{Op: transport.OpStats})
	if err != nil {
		return 0, err
	}
	if err := resp.Error(); err != nil {
		return 0, err
	}
	if resp.Stats == nil {
		return 0, errors.New("no stats in reply")
	}
	return resp.Stats.Entries, nil
}

// copiesOf describes what each node holds under k in its own store
// (value and version), for failure reports.
func (d *dcluster) copiesOf(k string) string {
	var parts []string
	for _, s := range services {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		resp, err := d.tc.Call(ctx, d.data[s], &transport.Request{Op: transport.OpLookup, Key: k})
		cancel()
		switch {
		case err != nil:
			parts = append(parts, fmt.Sprintf("%s: %v", s, err))
		case resp.Error() != nil:
			parts = append(parts, fmt.Sprintf("%s: %v", s, resp.Error()))
		default:
			parts = append(parts, fmt.Sprintf("%s: %q v%d", s, resp.Value, resp.Version))
		}
	}
	return strings.Join(parts, ", ")
}

// waitCopies waits until svcs hold want entries in total (2 × distinct
// keys: every key at its full replica count); it returns the time from since.
func (d *dcluster) waitCopies(since time.Time, timeout time.Duration, want int64, svcs ...string) time.Duration {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var total int64
		per := map[string]int64{}
		var err error
		for _, s := range svcs {
			var n int64
			if n, err = d.entries(s); err != nil {
				break
			}
			per[s] = n
			total += n
		}
		if err == nil && total == want {
			return time.Since(since)
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("entries on %v = %d %v (err %v), want %d within %v", svcs, total, per, err, want, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func set(cl *client.Client, k, v string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	return cl.Set(ctx, k, []byte(v), 0)
}

func get(cl *client.Client, k string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	v, err := cl.Get(ctx, k)
	return string(v), err
}

func key(i int) string   { return fmt.Sprintf("key-%05d", i) }
func value(i int) string { return fmt.Sprintf("value-%05d", i) }

func writeKeys(t *testing.T, cl *client.Client, n int) {
	t.Helper()
	clienttest.Parallel(t, n, func(i int) error { return set(cl, key(i), value(i)) })
}

func readKeys(t *testing.T, cl *client.Client, n int, via string) {
	t.Helper()
	clienttest.Parallel(t, n, func(i int) error {
		if v, err := get(cl, key(i)); err != nil || v != value(i) {
			return fmt.Errorf("get %s via %s = %q, %v; want %q", key(i), via, v, err, value(i))
		}
		return nil
	})
}

// reader returns a load op that reads the static keys and expects their values.
func reader(cl *client.Client, n int) func(ctx context.Context, i int) error {
	return func(ctx context.Context, i int) error {
		k := (i * 7919) % n
		v, err := cl.Get(ctx, key(k))
		if err != nil {
			return fmt.Errorf("get %s: %w", key(k), err)
		}
		if string(v) != value(k) {
			return fmt.Errorf("get %s = %q, want %q", key(k), v, value(k))
		}
		return nil
	}
}

func summary(t *testing.T, name string, detect, converge, window time.Duration, extra ...string) {
	t.Helper()
	line := fmt.Sprintf("FAULT %s: detect=%dms converge=%dms max_error_window=%dms", name, detect.Milliseconds(), converge.Milliseconds(), window.Milliseconds())
	if len(extra) > 0 {
		line += " " + strings.Join(extra, " ")
	}
	t.Log(line)
}
