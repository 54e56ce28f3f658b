// Package browsertest starts a real headless browser for tests — Debian's
// `chromium`, driven over the DevTools protocol with chromedp — and
// records what the pages it opens do: every network request, every console
// message, uncaught exception and browser-log entry. Tests of the pod's
// status page use it to prove the page works offline, makes no request
// beyond the pod, and logs no error.
//
// Chromium missing: the test is skipped on a developer's machine, and
// fails in CI (CI or RADAR_REQUIRE_BROWSER set), where .ci/run installs it.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Path finds the browser: $RADAR_CHROMIUM, else chromium (Debian's) or
// chromium-browser, else google-chrome on PATH.
func Path() (string, error) {
	if p := os.Getenv("RADAR_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no chromium on PATH (Debian: apt-get install chromium; or set RADAR_CHROMIUM)")
}

// required reports whether a missing browser fails the test (CI) rather
// than skipping it.
func required() bool { return os.Getenv("CI") != "" || os.Getenv("RADAR_REQUIRE_BROWSER") != "" }

// Request is one request the page made.
type Request struct {
	Method, URL string
	// Failed is the browser's error text for a request that did not
	// complete ("" when it did, or has not finished).
	Failed string
}

// Browser is one headless browser with one tab.
type Browser struct {
	// Ctx is the tab's chromedp context: pass it to chromedp.Do / Run.
	Ctx context.Context

	mu       sync.Mutex
	console  []chromedp.ConsoleMessage
	requests []Request
	byID     map[network.RequestID]int
}

// Start launches the browser (a fresh profile in a temporary directory,
// no sandbox: tests run as root) with a desktop-sized window, and stops it
// when the test ends.
func Start(t testing.TB) *Browser {
	t.Helper()
	path, err := Path()
	if err != nil {
		if required() {
			t.Fatalf("browser test: %v", err)
		}
		t.Skipf("browser test skipped: %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1280),
		// No traffic of the browser's own (updates, safe browsing, field
		// trials): only the page's requests reach the network log.
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("metrics-recording-only", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &Browser{Ctx: ctx, byID: map[network.RequestID]int{}}
	// The first call starts the browser; it must not carry a timeout (the
	// timeout would end the browser with it).
	if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	if err := chromedp.Listen(ctx, b.onEvent); err != nil {
		t.Fatalf("listen to the browser's events: %v", err)
	}
	return b
}

func (b *Browser) onEvent(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		if _, ok := b.byID[ev.RequestID]; !ok || ev.RedirectResponse != nil {
			b.byID[ev.RequestID] = len(b.requests)
			b.requests = append(b.requests, Request{Method: ev.Request.Method, URL: ev.Request.URL})
		}
	case *network.EventLoadingFailed:
		if i, ok := b.byID[ev.RequestID]; ok {
			b.requests[i].Failed = ev.ErrorText
		}
	}
}

// Requests lists every request the tab made, in order.
func (b *Browser) Requests() []Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Request(nil), b.requests...)
}

// Console lists every console message, exception and browser-log entry.
func (b *Browser) Console() []chromedp.ConsoleMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), b.console...)
}

// Errors lists the console messages of type error and the exceptions.
func (b *Browser) Errors() []string {
	var out []string
	for _, m := range b.Console() {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			out = append(out, m.String())
		}
	}
	return out
}

// ForeignRequests lists the requests to anything but origin (scheme,
// host and port, e.g. "http://127.0.0.1:9100"). data: URLs stay inside
// the page and are not counted.
func (b *Browser) ForeignRequests(origin string) []string {
	var out []string
	for _, r := range b.Requests() {
		if strings.HasPrefix(r.URL, "data:") || r.URL == origin || strings.HasPrefix(r.URL, origin+"/") {
			continue
		}
		out = append(out, r.Method+" "+r.URL)
	}
	return out
}

// Do runs actions in the tab, bounded by timeout.
func (b *Browser) Do(t testing.TB, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// Eval evaluates a JavaScript expression in the tab and decodes its value.
func Eval[T any](t testing.TB, b *Browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("browser: evaluate %s: %v", expr, err)
	}
	return v
}

// Screenshot captures the whole page as PNG (quality 100 is PNG in chromedp) and saves it as a test
// artifact (see ArtifactDir) named name; it returns the path and logs it.
func (b *Browser) Screenshot(t testing.TB, name string) (path string, png []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browser: screenshot: %v", err)
	}
	path = filepath.Join(ArtifactDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("save the screenshot: %v", err)
	}
	t.Logf("screenshot saved: %s", path)
	return path, png
}

// ScreenshotViewport captures what the window shows (its top, 1280×1280)
// as PNG and saves it like Screenshot.
func (b *Browser) ScreenshotViewport(t testing.TB, name string) (path string, png []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("browser: screenshot: %v", err)
	}
	path = filepath.Join(ArtifactDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("save the screenshot: %v", err)
	}
	t.Logf("screenshot saved: %s", path)
	return path, png
}

// ArtifactDir is where a test keeps what a person should look at after
// the run: $RADAR_TEST_ARTIFACTS/<test name> when that is set (CI uploads
// it), else a directory kept after the test (its path is logged).
func ArtifactDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv("RADAR_TEST_ARTIFACTS")
	if base == "" {
		base = filepath.Join(os.TempDir(), "radar-test-artifacts")
	}
	dir := filepath.Join(base, regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	return dir
}
