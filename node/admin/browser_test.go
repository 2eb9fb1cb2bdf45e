package admin

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/starlingcache/starling/node/metrics"
	"github.com/starlingcache/starling/transport"
)

// chromiumPath finds a Chromium-family browser: $STARLING_CHROMIUM, or
// the first of the usual names on PATH.
func chromiumPath() string {
	if p := os.Getenv("STARLING_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactDir is where screenshots go: $STARLING_ARTIFACTS if set (CI
// keeps it), else a directory removed after the test.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("STARLING_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// TestBrowserStatusPage loads the status page of a fake three-member
// cluster in headless Chromium, as an operator would, and checks what it
// draws: three ring arcs, three member rows, rates that appear once the
// page has polled twice (without reloading), a readiness badge that
// follows the node, and no script error or CSP violation on the way.
func TestBrowserStatusPage(t *testing.T) {
	exe := chromiumPath()
	if exe == "" {
		t.Skip("no Chromium found (install it with `apt-get install -y chromium`, or set STARLING_CHROMIUM): skipping the browser test")
	}
	src := newFakeCluster(t, "n1", "n2", "n3")
	src.setReady(nil)
	rec := metrics.NewRecorder()
	for i := range 40 {
		rec.Observe(transport.OpGet, metrics.OK, i%3 == 0, time.Duration(30+i*7)*time.Microsecond)
	}
	for i := range 12 {
		rec.Observe(transport.OpSet, metrics.OK, i%2 == 0, time.Duration(200+i*40)*time.Microsecond)
	}
	rec.Observe(transport.OpGet, metrics.NotFound, false, 25*time.Microsecond)
	rec.Observe(transport.OpDelete, metrics.Error, true, 3*time.Millisecond)
	rec.AddBytes(48_000, 512_000)
	cfg := DefaultConfig()
	cfg.RefreshInterval = 200 * time.Millisecond // the page polls fast, so the test is short
	_, base := startServer(t, cfg, src, rec)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // tests may run as root, where Chromium's sandbox refuses to start
		chromedp.WindowSize(1440, 960),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	// Collect console errors, uncaught exceptions and CSP reports.
	var (
		mu       sync.Mutex
		problems []string
	)
	messages := chromedp.Console(bctx)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
				mu.Lock()
				problems = append(problems, string(m.Type)+": "+m.Text+" at "+m.URL)
				mu.Unlock()
			}
		}
	}()
	defer func() {
		cancelBrowser()
		<-consoleDone
	}()

	run := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, a); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	wait := func(what, predicate string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](predicate, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			t.Fatalf("waiting for %s: %v (page text: %.400q)", what, err, eval(`document.body.innerText`))
		}
	}

	run("navigate", chromedp.Navigate(base+"/"))
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`)); err != nil {
		t.Fatal(err)
	}
	wait("the ring and the member table",
		`document.querySelectorAll('#arcs .arc').length === 3 && document.querySelectorAll('#members tbody tr').length === 3`)

	if got := eval(`document.getElementById('t-members').textContent`); got != "3" {
		t.Errorf("members tile = %q, want 3", got)
	}
	if got := eval(`document.getElementById('ring-count').textContent`); got != "3" {
		t.Errorf("ring centre = %q, want 3", got)
	}
	if got := eval(`[...document.querySelectorAll('#members tbody tr')].map(r => r.dataset.name).join(',')`); got != "n1,n2,n3" {
		t.Errorf("member rows = %q", got)
	}
	if got := eval(`[...document.querySelectorAll('#legend li')].map(r => r.dataset.name).join(',')`); got != "n1,n2,n3" {
		t.Errorf("legend = %q", got)
	}
	if got := eval(`[...document.querySelectorAll('#members .state')].map(s => s.className + ':' + getComputedStyle(s).backgroundColor).join(' ')`); strings.Count(got, "state alive:rgb(220, 252, 231)") != 3 {
		t.Errorf("member states are not shown as alive (green): %q", got)
	}
	// The arcs are drawn in proportion to the shares: they cover the ring
	// less the gaps between them, each in its own colour.
	if got := eval(`(() => {
		const arcs = [...document.querySelectorAll('#arcs .arc')];
		const circ = 2 * Math.PI * 84;
		const drawn = arcs.reduce((s, a) => s + parseFloat(a.getAttribute('stroke-dasharray')), 0);
		const colours = new Set(arcs.map(a => a.getAttribute('stroke')));
		return (Math.abs(drawn + 3 * 1.5 - circ) < 0.01) + ',' + colours.size;
	})()`); got != "true,3" {
		t.Errorf("arcs (covers the ring, distinct colours) = %s, want true,3", got)
	}

	// Rates need two polls; they appear without a reload.
	wait("ops/s for every member",
		`[...document.querySelectorAll('#members tbody td.ops')].every(td => /[0-9]/.test(td.textContent))`)
	if got := eval(`String(window.__sameDocument === true)`); got != "true" {
		t.Error("the page reloaded to refresh")
	}
	if got := eval(`document.querySelectorAll('#ops tbody tr').length + ''`); got != "3" {
		t.Errorf("request table has %s rows, want 3 (get, set, delete)", got)
	}

	dir := artifactDir(t)
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin-status-page.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the status page: %s", path)

	// The page follows the node: it loses readiness and a member leaves.
	src.mu.Lock()
	src.ready = errors.New("hand-off pending")
	src.status.Members[2].State = "leaving"
	src.cluster[1].Error = "node 127.0.0.1:7002: connection refused"
	src.mu.Unlock()
	wait("the not-ready badge and the leaving member",
		`document.getElementById('ready').textContent === 'not ready' &&
		 document.querySelector('#members tr[data-name="n3"] .state').textContent === 'leaving' &&
		 /unreachable/.test(document.querySelector('#members tr[data-name="n2"]').textContent)`)
	if got := eval(`document.getElementById('banner').textContent`); !strings.Contains(got, "hand-off pending") {
		t.Errorf("banner = %q, want the reason the node is not ready", got)
	}
	shot, err = chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "admin-status-page-degraded.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the degraded status page: %s", path)

	cancelBrowser()
	<-consoleDone
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("browser console: %s", p)
	}
}
