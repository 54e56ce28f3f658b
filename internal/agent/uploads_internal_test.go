package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/netif"
	"github.com/radarpod/radarpod/internal/outbox"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/telemetry"
)

// gateService is a pods service whose every upload the test answers by
// hand, so the uploader's order and window can be checked step by step.
// It checks its invariants on every call, whatever the scheduling:
// never more than window uploads at once, and nothing new starting
// between a failure and the end of every upload in flight when it failed.
type gateService struct {
	t      *testing.T
	window int
	starts chan string // result of each upload as it starts

	mu        sync.Mutex
	replies   map[string]chan error
	inFlight  map[string]bool
	returned  chan string     // result of each upload as it returns
	quiet     map[string]bool // in flight when an upload failed
	delivered map[string]int  // successful uploads per result
	attempts  map[string]int  // uploads per result
}

func newGate(t *testing.T, window int) *gateService {
	return &gateService{t: t, window: window, starts: make(chan string, 64), returned: make(chan string, 64),
		replies: map[string]chan error{}, inFlight: map[string]bool{}, quiet: map[string]bool{},
		delivered: map[string]int{}, attempts: map[string]int{}}
}

func (g *gateService) Register(context.Context, radar.RegisterRequest) (radar.Identity, error) {
	return radar.Identity{}, errors.New("not used")
}

func (g *gateService) Status(context.Context, radar.Identity, radar.StatusRequest) (radar.StatusResponse, error) {
	return radar.StatusResponse{}, errors.New("not used")
}

func (g *gateService) UploadMeasurement(ctx context.Context, _ radar.Identity, m radar.Measurement) error {
	key := string(m.Result)
	reply := make(chan error, 1)
	g.mu.Lock()
	if g.inFlight[key] {
		g.t.Errorf("%s uploaded while already in flight", key)
	}
	if len(g.inFlight) >= g.window {
		g.t.Errorf("%s started with %d uploads in flight, window %d", key, len(g.inFlight), g.window)
	}
	if len(g.quiet) > 0 {
		g.t.Errorf("%s started while uploads in flight at a failure had not finished: %v", key, slices.Sorted(maps.Keys(g.quiet)))
	}
	g.inFlight[key] = true
	g.attempts[key]++
	g.replies[key] = reply
	g.mu.Unlock()
	g.starts <- key
	var err error
	select {
	case err = <-reply:
	case <-ctx.Done():
		err = ctx.Err()
	}
	g.mu.Lock()
	delete(g.inFlight, key)
	delete(g.quiet, key)
	if err == nil {
		g.delivered[key]++
	} else if ctx.Err() == nil {
		maps.Copy(g.quiet, g.inFlight)
	}
	g.mu.Unlock()
	g.returned <- key
	return err
}

// answer ends the upload of key and waits until the service call returned.
func (g *gateService) answer(key string, err error) {
	g.t.Helper()
	g.mu.Lock()
	reply, ok := g.replies[key]
	delete(g.replies, key)
	g.mu.Unlock()
	if !ok {
		g.t.Fatalf("answer %s: not in flight", key)
	}
	reply <- err
	for {
		select {
		case k := <-g.returned:
			if k == key {
				return
			}
		case <-time.After(wait):
			g.t.Fatalf("upload of %s did not return", key)
		}
	}
}

// expectStarts waits for n uploads to start and returns their results.
func (g *gateService) expectStarts(n int) []string {
	g.t.Helper()
	var got []string
	for len(got) < n {
		select {
		case k := <-g.starts:
			got = append(got, k)
		case <-time.After(wait):
			g.t.Fatalf("waited for %d upload starts, got %v", n, got)
		}
	}
	slices.Sort(got)
	return got
}

const wait = 90 * time.Second

func recKey(i int) string { return fmt.Sprintf("result-%03d", i) }

func keys(is ...int) []string {
	out := make([]string, len(is))
	for i, n := range is {
		out[i] = recKey(n)
	}
	slices.Sort(out)
	return out
}

// plainOutbox hides the store's batch methods: the uploader then delivers
// one record at a time.
type plainOutbox struct{ Outbox }

func uploadTestAgent(t *testing.T, box Outbox, svc Service) *Agent {
	// Backoffs of a few milliseconds: the test waits on events, not time.
	old := retryPacing
	retryPacing = backoff.Backoff{Initial: 5 * time.Millisecond, Max: 10 * time.Millisecond}
	t.Cleanup(func() { retryPacing = old })
	return &Agent{
		log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})), metrics: telemetry.NewMetrics(),
		outbox: box, service: svc, kickUp: make(chan struct{}, 1),
		reports:       &throttle{every: time.Hour, last: map[string]time.Time{}},
		uploadTimeout: defaultUploadTimeout,
	}
}

func fillOutbox(t *testing.T, n int) *outbox.Store {
	t.Helper()
	box, err := outbox.Open(outbox.Options{Dir: t.TempDir(), MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { box.Close() })
	for i := range n {
		if _, err := box.Put(outbox.Record{Runner: "ookla", Style: radar.StyleOokla, Result: []byte(recKey(i))}); err != nil {
			t.Fatal(err)
		}
	}
	return box
}

func startUploads(t *testing.T, a *Agent) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.uploadLoop(ctx, radar.Identity{UnixUser: "u", Secret: "s"})
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(wait):
			t.Fatal("uploadLoop did not return after cancellation")
		}
	}
	t.Cleanup(stop)
	return stop
}

func waitEmpty(t *testing.T, box Outbox) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for box.Stats().Records > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d records left in the outbox", box.Stats().Records)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUploadsStartOldestFirstInABoundedWindow walks the pipelined uploader
// through a backlog answer by answer: the oldest results start first, a
// finished upload makes room for exactly the next oldest, a failure stops
// new starts until everything in flight has finished, and the next round
// starts again from the failed result. Every result is delivered once and
// removed from the disk.
func TestUploadsStartOldestFirstInABoundedWindow(t *testing.T) {
	k := uploadsInFlight
	if k < 3 {
		t.Fatalf("this walk needs a window of at least 3, have %d", k)
	}
	n := 3 * k
	box := fillOutbox(t, n)
	g := newGate(t, k)
	a := uploadTestAgent(t, box, g)
	startUploads(t, a)

	if got := g.expectStarts(k); !slices.Equal(got, keys(seq(0, k)...)) {
		t.Fatalf("first uploads %v, want the %d oldest", got, k)
	}
	// One finishes: room for exactly the next oldest.
	g.answer(recKey(1), nil)
	if got := g.expectStarts(1); got[0] != recKey(k) {
		t.Fatalf("after one delivery %s started, want %s", got[0], recKey(k))
	}
	g.answer(recKey(k), nil)
	if got := g.expectStarts(1); got[0] != recKey(k+1) {
		t.Fatalf("after the next delivery %s started, want %s", got[0], recKey(k+1))
	}
	// The oldest fails: nothing new starts while the rest finish (the gate
	// checks), then the next round starts from it.
	g.answer(recKey(0), errors.New("connection reset by peer"))
	for _, i := range append(seq(2, k), k+1) {
		g.answer(recKey(i), nil)
	}
	want := keys(append([]int{0}, seq(k+2, 2*k+1)...)...)
	if got := g.expectStarts(k); !slices.Equal(got, want) {
		t.Fatalf("after the failed round %v started, want the failed result and the next oldest %v", got, want)
	}
	// Deliver the rest as they come.
	pending := want
	for len(pending) > 0 {
		for _, key := range pending {
			g.answer(key, nil)
		}
		left := n - len(g.deliveredKeys())
		pending = g.expectStarts(min(k, left))
	}
	waitEmpty(t, box)
	got := g.deliveredKeys()
	if !slices.Equal(got, keys(seq(0, n)...)) {
		t.Fatalf("delivered %v, want all %d", got, n)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for key, c := range g.delivered {
		if c != 1 {
			t.Errorf("%s delivered %d times", key, c)
		}
	}
	if g.attempts[recKey(0)] != 2 {
		t.Errorf("failed result attempted %d times, want 2", g.attempts[recKey(0)])
	}
}

// TestOutboxWithoutBatchesIsDeliveredOneAtATime: an Outbox that cannot
// walk past its oldest record is delivered strictly in order.
func TestOutboxWithoutBatchesIsDeliveredOneAtATime(t *testing.T) {
	box := fillOutbox(t, 3)
	g := newGate(t, 1)
	a := uploadTestAgent(t, plainOutbox{box}, g)
	startUploads(t, a)
	g.expectStarts(1)
	g.answer(recKey(0), errors.New("connection refused"))
	for i := range 3 {
		if got := g.expectStarts(1); got[0] != recKey(i) {
			t.Fatalf("started %s, want %s", got[0], recKey(i))
		}
		g.answer(recKey(i), nil)
	}
	waitEmpty(t, box)
}

// TestShutdownRemovesWhatWasDelivered: a 201 received while the agent
// stops is not lost to a restart: the record is removed on the way out,
// the others stay for the next start.
func TestShutdownRemovesWhatWasDelivered(t *testing.T) {
	k := uploadsInFlight
	box := fillOutbox(t, k+2)
	g := newGate(t, k)
	a := uploadTestAgent(t, box, g)
	stop := startUploads(t, a)
	g.expectStarts(k)
	// The service has answered; whether the uploader took the answer before
	// the cancellation is up to the scheduler — either way it must count.
	g.mu.Lock()
	reply := g.replies[recKey(0)]
	delete(g.replies, recKey(0))
	g.mu.Unlock()
	reply <- nil
	for key := <-g.returned; key != recKey(0); key = <-g.returned {
	}
	stop()
	if got := box.Stats().Records; got != k+1 {
		t.Fatalf("%d records left after shutdown, want %d (all but the delivered one)", got, k+1)
	}
	r, ok, err := box.Oldest()
	if err != nil || !ok || string(r.Result) != recKey(1) {
		t.Fatalf("oldest after shutdown = %q, %v, %v; want %s", r.Result, ok, err, recKey(1))
	}
}

func (g *gateService) deliveredKeys() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Sorted(maps.Keys(g.delivered))
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// heldRemovals holds the store's batch removals until released and flags
// any delivered record the uploader is handed again.
type heldRemovals struct {
	*outbox.Store
	g       *gateService
	called  chan struct{}
	release chan struct{}
}

func (h *heldRemovals) RemoveBatch(ids []string) error {
	select {
	case h.called <- struct{}{}:
	default:
	}
	<-h.release
	return h.Store.RemoveBatch(ids)
}

func (h *heldRemovals) Next(after string) (outbox.Record, bool, error) {
	r, ok, err := h.Store.Next(after)
	if ok {
		h.g.mu.Lock()
		if h.g.delivered[string(r.Result)] > 0 {
			h.g.t.Errorf("%s handed to the uploader again before its removal finished", r.Result)
		}
		h.g.mu.Unlock()
	}
	return r, ok, err
}

// TestNothingDeliveredIsSentAgainWhileItsRemovalIsPending: the uploader
// catches up while the disk is still removing what it delivered; it must
// wait for the removals before it looks at the oldest record again.
func TestNothingDeliveredIsSentAgainWhileItsRemovalIsPending(t *testing.T) {
	k := uploadsInFlight
	g := newGate(t, k)
	box := &heldRemovals{Store: fillOutbox(t, k), g: g, called: make(chan struct{}, 1), release: make(chan struct{})}
	a := uploadTestAgent(t, box, g)
	startUploads(t, a)
	for _, key := range g.expectStarts(k) {
		g.answer(key, nil)
	}
	select {
	case <-box.called:
	case <-time.After(wait):
		t.Fatal("no removal after every upload succeeded")
	}
	// Not a timing assertion: the pause only gives an uploader that does
	// not wait for its removals the chance to look again too early.
	time.Sleep(100 * time.Millisecond)
	close(box.release)
	waitEmpty(t, box)
	g.mu.Lock()
	defer g.mu.Unlock()
	for key, n := range g.attempts {
		if n != 1 {
			t.Errorf("%s uploaded %d times", key, n)
		}
	}
}

// statusService answers the status heartbeat; uploads go through the gate.
type statusService struct{ *gateService }

func (statusService) Status(context.Context, radar.Identity, radar.StatusRequest) (radar.StatusResponse, error) {
	return radar.StatusResponse{}, nil
}

// TestAStatusAnswerWakesTheUploader: with the live channel down, the status
// heartbeat is how the pod hears that the service is back; the backlog
// must go then, not at the end of the uploader's backoff (an hour here, so
// only the wake-up can deliver it within the test).
func TestAStatusAnswerWakesTheUploader(t *testing.T) {
	g := newGate(t, uploadsInFlight)
	box := fillOutbox(t, 1)
	a := uploadTestAgent(t, box, statusService{g})
	a.interfaces = func() ([]netif.Interface, error) { return nil, nil }
	retryPacing = backoff.Backoff{Initial: time.Hour, Max: time.Hour} // restored by uploadTestAgent's cleanup
	startUploads(t, a)
	first := g.expectStarts(1)
	g.answer(first[0], errors.New("service unavailable"))

	a.statusOnce(t.Context(), radar.Identity{UnixUser: "u", Secret: "s"})
	if again := g.expectStarts(1); again[0] != first[0] {
		t.Fatalf("after the status answer %s was uploaded, want %s again", again[0], first[0])
	}
	g.answer(first[0], nil)
	waitEmpty(t, box)
}
