package faults

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/benchreport"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radartest"
)

// uploadWindow is how many uploads the agent keeps in flight: the
// constant uploadsInFlight of internal/agent, read from its source so the
// drill's order check follows the agent's design rather than a copy of it.
func uploadWindow(t *testing.T) int {
	t.Helper()
	root, err := proctest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "internal", "agent", "*.go"))
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if name.Name != "uploadsInFlight" || i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.INT {
						if n, err := strconv.Atoi(lit.Value); err == nil && n > 0 {
							return n
						}
					}
				}
			}
		}
	}
	t.Fatal("internal/agent has no integer constant uploadsInFlight any more: update the outage drill's order check")
	return 0
}

// outage answers every upload with a failure, cycling through the ways a
// service is down: an error page, a gateway error, a cut connection, and
// no answer at all (the agent's client gives up after 30 s without a
// response header; the answer, never stored, would come at 40 s).
func outage(tally *replyTally) func(int) radartest.Reply {
	return func(n int) radartest.Reply {
		switch n % 4 {
		case 0:
			tally.add("500")
			return radartest.Reply{Status: 500}
		case 1:
			tally.add("502-html")
			return radartest.Reply{Status: 502, Body: []byte("<html><body><h1>502 Bad Gateway</h1></body></html>")}
		case 2:
			tally.add("hangup")
			return radartest.Reply{Hangup: true}
		default:
			tally.add("timeout")
			return radartest.Reply{Delay: 40 * time.Second, Status: 504}
		}
	}
}

// TestLongOutageDeliversEverythingOldestFirst fails every upload for a
// long time while the service keeps asking for tests (the live channel
// stays up, as it does when only the service's storage is down): the pod
// must keep testing and buffering, and once uploads work again deliver
// every buffered result, none twice, oldest first. A test every two
// seconds instead of four a day compresses days of outage into the drill's
// minutes.
func TestLongOutageDeliversEverythingOldestFirst(t *testing.T) {
	t.Parallel()
	sz := size()
	srv := startService(t, false)
	ooklaDir := t.TempDir()
	fake := ooklatest.Install(t, ooklaDir, ooklatest.ModeUnique)
	p := newPod(t, srv, fake, podOptions{metrics: true})
	p.start()

	// A healthy start: one result delivered.
	srv.SendRunTest(nil)
	srv.SetPendingTest(true)
	waitUntil(t, "a first delivery", func() bool { return len(srv.Measurements()) >= 1 })
	waitIdle(t, srv, p)
	waitUntil(t, "the first results delivered", func() bool { return len(deliveries(t, srv).missing(p.produced())) == 0 })
	before, base := len(p.produced()), len(srv.Measurements())

	tally := &replyTally{}
	srv.SetResponder(radartest.EndpointUpload, outage(tally))
	req := requestTests(srv, sz.testEvery)
	defer req.halt()
	var peak float64
	for end := time.Now().Add(sz.outage); time.Now().Before(end); time.Sleep(time.Second) {
		if !p.alive() {
			t.Fatalf("the agent exited during the outage:\n%s", p.output())
		}
		if v, ok := p.metric("radar_outbox_records"); ok {
			peak = max(peak, v)
		}
	}
	req.halt()
	waitIdle(t, srv, p)
	if stored := len(srv.Measurements()); stored != base {
		t.Fatalf("%d results stored during the outage; the drill's outage leaked", stored-base)
	}
	buffered := len(p.produced()) - before
	if buffered < int(sz.outage/sz.testEvery)/2 {
		t.Fatalf("only %d results buffered during a %v outage with a test every %v: the pod stopped testing", buffered, sz.outage, sz.testEvery)
	}
	if v, ok := p.metric("radar_outbox_records"); !ok || int(v) != buffered {
		t.Errorf("radar_outbox_records = %v (%v), want the %d buffered results", v, ok, buffered)
	}

	// The service returns. The pod learns it at its next retry, its backoff
	// having grown through the outage (up to 5 minutes). Each upload takes
	// a moment to store, far longer than the jitter between uploads started
	// together: a result can then be overtaken only by those started with
	// it, which makes "oldest first" exact up to the agent's upload window.
	window := uploadWindow(t)
	srv.SetResponder(radartest.EndpointUpload, func(int) radartest.Reply { return radartest.Reply{Delay: 200 * time.Millisecond} })
	back := time.Now()
	produced := p.produced()
	deadline := time.Now().Add(wait + 5*time.Minute)
	var d delivered
	for {
		d = deliveries(t, srv)
		if len(d.missing(produced)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d buffered results never delivered: %v", len(d.missing(produced)), buffered, d.missing(produced))
		}
		time.Sleep(100 * time.Millisecond)
	}
	recovery := time.Since(back)
	waitUntil(t, "the outbox to empty", func() bool {
		v, ok := p.metric("radar_outbox_records")
		return ok && v == 0
	})

	if d.duplicates() != 0 {
		t.Errorf("%d results stored twice; no upload was stored and then refused in this drill", d.duplicates())
	}
	if len(d.times) != len(produced) {
		t.Errorf("delivered %d distinct results, produced %d", len(d.times), len(produced))
	}
	late, worst := lateness(d.order)
	if worst > window-1 {
		t.Errorf("not delivered oldest first: a result arrived %d places behind newer ones (with %d uploads in flight, at most %d); arrival order %v",
			worst, window, window-1, d.order)
	}
	t.Logf("%s drill: %v outage, a test every %v; upload answers meanwhile: %s", sz.name, sz.outage, sz.testEvery, tally)
	t.Logf("buffered %d (outbox peak %.0f), all delivered %v after the service returned, none twice; %d of them overtaken by another upload in flight (%d at a time)",
		buffered, peak, recovery.Round(time.Second), late, window)
	addFigure(benchreport.Figure{Name: "faults/outage/lost_results", Value: float64(len(d.missing(produced))), Unit: "results", Op: "<=", Target: 0,
		Notes: fmt.Sprintf("%v of failing uploads, a test every %v: %d results buffered", sz.outage, sz.testEvery, buffered)})
	addFigure(benchreport.Figure{Name: "faults/outage/max_places_late", Value: float64(worst), Unit: "places", Op: "<=", Target: float64(window - 1),
		Notes: fmt.Sprintf("oldest first, %d uploads in flight, each taking 200 ms to store", window)})
	addFigure(benchreport.Figure{Name: "faults/outage/delivered_after_return", Value: recovery.Seconds(), Unit: "s",
		Notes: "from the service's return to the last buffered result stored: mostly the upload backoff the outage built up (channel stayed up, so nothing cut it short)"})
}
