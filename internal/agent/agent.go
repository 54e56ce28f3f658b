// Package agent owns what the pod does and when: registration, the live
// channel and its fallback heartbeat, test runs (queued and coalesced),
// delivery of results through the durable outbox, the standalone schedule,
// and handing update announcements to the updater. It composes the protocol
// (radar), the runners (speedtest) and the store (outbox); it never talks to
// Docker.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/httpclient"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/netif"
	"github.com/radarpod/radarpod/internal/outbox"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/speedtest"
	"github.com/radarpod/radarpod/internal/speedtest/ndt7"
	"github.com/radarpod/radarpod/internal/speedtest/ookla"
	"github.com/radarpod/radarpod/internal/telemetry"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// Runner runs one kind of speed test against one target.
type Runner interface {
	Name() string
	Run(ctx context.Context, t speedtest.Target) (speedtest.Result, error)
}

// availability is implemented by runners that can be absent (the Ookla CLI).
type availability interface{ Available() error }

// Outbox is the durable store results wait in until the service has them.
type Outbox interface {
	Put(outbox.Record) (outbox.Record, error)
	Oldest() (outbox.Record, bool, error)
	Remove(id string) error
	Stats() outbox.Stats
	Notify() <-chan struct{}
}

// Service is the pods service's HTTP side.
type Service interface {
	Register(ctx context.Context, r radar.RegisterRequest) (radar.Identity, error)
	Status(ctx context.Context, id radar.Identity, r radar.StatusRequest) (radar.StatusResponse, error)
	UploadMeasurement(ctx context.Context, id radar.Identity, m radar.Measurement) error
}

// Channel is the live channel; Run returns only when ctx is done.
type Channel interface {
	Run(ctx context.Context, h radar.Handler) error
}

// Options assemble an Agent. Only Config and Log are required; the rest have
// production defaults and exist so tests can observe or shorten things.
type Options struct {
	Config   config.Agent
	Log      *slog.Logger
	Metrics  *telemetry.Metrics
	Sentry   *telemetry.Sentry
	Redactor *telemetry.Redactor

	// Runners replaces the runners built from Config.Tests.
	Runners []Runner
	// Interfaces lists the pod's interfaces (netif.List by default).
	Interfaces func() ([]netif.Interface, error)
	// PingTimeout overrides the protocol's 2 minute dead-channel limit.
	PingTimeout time.Duration
	// Dialer overrides the WebSocket dialer (private CAs in tests).
	Dialer *websocket.Dialer
	// HTTPClient overrides the pods service HTTP client.
	HTTPClient *http.Client
	// Updater is the updater's configuration as the agent's environment
	// gives it (compose passes the CRL URL and the agent image, not the
	// updater's secrets), so the network check covers the whole pod (CRL
	// host, registry).
	Updater config.Updater
	// NetCheck replaces the network preflight (netcheck.Check of the
	// configuration's requirements).
	NetCheck func(context.Context) netcheck.Report
	// NetCheckAfter is how long the channel must be down before the check
	// runs again (default 5 minutes).
	NetCheckAfter time.Duration
	// UploadTimeout bounds one measurement upload (default 2 minutes).
	UploadTimeout time.Duration
	// Clock judges the system clock and learns the time from the pods
	// service's answers; nil reads the real clocks (tests inject a Pi's).
	Clock *wallclock.Clock
	// Now is the time the agent paces its reports by (the hourly report
	// throttle, the network check's repeat); nil is time.Now. The Sentry
	// outage scenario runs it fast, with telemetry's own clock.
	Now func() time.Time
}

// Agent is one pod agent process.
type Agent struct {
	cfg      config.Agent
	log      *slog.Logger
	metrics  *telemetry.Metrics
	sentry   *telemetry.Sentry
	redactor *telemetry.Redactor
	health   *telemetry.Health

	runners    []Runner
	interfaces func() ([]netif.Interface, error)
	outbox     Outbox
	results    *resultLog
	budget     *dataBudget
	service    Service
	newChannel func(radar.Identity) Channel
	start      *radar.ServiceStart

	queue *runQueue
	// stopped is closed when Run returns: callers of RunNow stop waiting.
	stopped chan struct{}
	events  chan serviceEvent
	kickUp  chan struct{}
	reports *throttle
	lock    *handoff.TestLock

	netCheck      func(context.Context) netcheck.Report
	netCheckAfter time.Duration
	// line is held by a test run and by the network check: each would
	// disturb the other's traffic.
	line sync.Mutex

	evictionsCounted atomic.Bool

	uploadTimeout time.Duration
	// clock is the process's one judge of the time; undated counts the
	// results recorded before the time was known that clockLoop has not
	// dated yet.
	clock   *wallclock.Clock
	undated atomic.Int64
	// pause, when set, replaces the uploader's backoff wait (tests).
	pause func(ctx context.Context, d time.Duration, wake <-chan struct{})
	// wait, when set, replaces the registration's and the status
	// heartbeat's waits (tests see each delay chosen; why is "register"
	// or "status").
	wait func(ctx context.Context, why string, d time.Duration) error
	// now is Options.Now.
	now func() time.Time

	// balena: the fleet's release, not the service's announcement, decides
	// the agent version, and no updater reads update requests.
	balena bool

	mu          sync.Mutex
	identity    radar.Identity
	channelIsUp bool
	lastReq     string
	// lastCheck is the last network check's report, for the status page.
	lastCheck    *netcheck.Report
	lastCheckWhy string

	// recent is the in-memory tail of the results history (history.go);
	// lastBeat is the last heartbeat, in Unix nanoseconds.
	recent   *recentResults
	lastBeat atomic.Int64
}

// New validates the environment the agent needs (a writable data dir, a
// usable outbox) and builds the runners and protocol clients.
func New(o Options) (*Agent, error) {
	cfg := o.Config
	if o.Metrics == nil {
		o.Metrics = telemetry.NewMetrics()
	}
	if o.Redactor == nil {
		o.Redactor = &telemetry.Redactor{}
	}
	o.Redactor.Add(cfg.RegistrationToken)
	if o.Interfaces == nil {
		o.Interfaces = netif.List
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir %s (RADAR_DATA_DIR): %w", cfg.DataDir, err)
	}
	a := &Agent{
		cfg: cfg, log: o.Log, metrics: o.Metrics, sentry: o.Sentry, redactor: o.Redactor,
		health:     &telemetry.Health{DataDir: cfg.DataDir, MaxSilence: time.Minute},
		interfaces: o.Interfaces,
		queue:      newRunQueue(),
		stopped:    make(chan struct{}),
		events:     make(chan serviceEvent, 64),
		kickUp:     make(chan struct{}, 1),
		reports:    &throttle{every: time.Hour, last: map[string]time.Time{}},
		start:      &radar.ServiceStart{},
		lock:       &handoff.TestLock{Paths: testLockPaths(cfg.DataDir)},
		balena:     onBalena(),

		netCheck: o.NetCheck, netCheckAfter: o.NetCheckAfter,
		uploadTimeout: o.UploadTimeout,
		clock:         o.Clock,
		now:           o.Now,
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.clock == nil {
		a.clock = wallclock.New(wallclock.Options{})
	}
	if a.netCheck == nil {
		a.netCheck = defaultNetCheck(cfg, o.Updater)
	}
	if a.netCheckAfter <= 0 {
		a.netCheckAfter = defaultNetCheckAfter
	}
	if a.uploadTimeout <= 0 {
		a.uploadTimeout = defaultUploadTimeout
	}
	if req, ok, _ := handoff.ReadRequest(cfg.DataDir); ok {
		a.lastReq = req.Version
	}
	results, err := openResultLog(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	results.onDrop = a.resultsDropped
	a.results = results
	a.budget = openDataBudget(cfg, a.log, a.metrics, a.recountResults)
	if a.recent, err = loadRecent(cfg.DataDir, time.Now()); err != nil {
		// The page shows less history; the files are left as they are.
		a.log.Warn("cannot read the results history for the status page", "err", err)
	}

	a.runners = o.Runners
	if a.runners == nil {
		if a.runners, err = a.buildRunners(); err != nil {
			return nil, err
		}
	}
	if cfg.Standalone() {
		return a, nil
	}

	box, err := outbox.Open(outbox.Options{
		Dir: cfg.DataDir + "/outbox", MaxBytes: int64(cfg.OutboxMaxBytes), Logger: a.log,
		OnEvict: a.evicted, OnUnreadable: a.unreadable,
	})
	if err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	a.outbox = box
	// The counter starts from the outbox's lifetime total, which already
	// includes anything Open evicted; OnEvict counts only what comes after.
	a.metrics.OutboxEvictions.Add(float64(box.Stats().Evictions))
	a.evictionsCounted.Store(true)
	a.updateOutboxMetrics()

	// Every answer of the service (register, status, upload, the channel's
	// upgrade) carries a Date: the time a pod without RTC learns first,
	// often long before NTP. Certificates are checked at the best estimate
	// of the time (never before the build), so a pod at 1970 still gets
	// that far.
	hc := o.HTTPClient
	if hc == nil {
		hc = httpclient.New(httpclient.Options{UserAgent: buildinfo.AgentUserAgent(), Clock: a.clock})
	} else {
		hc = httpclient.ObserveDates(hc, a.clock)
	}
	dialer := o.Dialer
	if dialer == nil {
		dialer = radar.DefaultDialer()
		dialer.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, Time: a.clock.TLSTime}
	}
	client := radar.NewClient(cfg.ServerURL, hc)
	client.Start = a.start
	a.service = client
	cableURL, err := radar.CableURL(cfg.ServerURL)
	if err != nil {
		return nil, fmt.Errorf("live channel URL from RADAR_SERVER_URL: %w", err)
	}
	pingTimeout := o.PingTimeout
	a.newChannel = func(id radar.Identity) Channel {
		return &radar.CableClient{
			URL: cableURL, Identity: id, UserAgent: buildinfo.AgentUserAgent(),
			Sync: a.syncPayload, Logger: a.log, Dialer: dialer, PingTimeout: pingTimeout,
			Start: a.start, OnUpgrade: a.clock.ObserveResponse,
			Backoff: ChannelBackoff(cfg.ReconnectMax),
		}
	}
	return a, nil
}

// onBalena reports whether a balena supervisor manages this container (it
// sets BALENA=1 in every service).
func onBalena() bool {
	return os.Getenv("BALENA") == "1" || os.Getenv("BALENA_SUPERVISOR_ADDRESS") != ""
}

func testLockPaths(dataDir string) []string {
	paths := []string{dataDir + "/" + handoff.TestLockFile}
	// On balena the supervisor owns releases; holding its lock keeps it from
	// restarting the agent in the middle of a measurement.
	if onBalena() {
		paths = append(paths, handoff.BalenaLockFile)
	}
	return paths
}

func (a *Agent) buildRunners() ([]Runner, error) {
	var runners []Runner
	for _, name := range a.cfg.Tests {
		switch name {
		case "ndt7":
			scheme, reason := ndt7.ChooseScheme(a.cfg.NDT7Scheme)
			a.log.Info("ndt7 scheme chosen", "scheme", scheme, "reason", reason)
			a.metrics.NDT7Scheme.Reset()
			a.metrics.NDT7Scheme.WithLabelValues(scheme, reason).Set(1)
			opts := ndt7.Options{Server: a.cfg.NDT7Server, Scheme: scheme, Logger: a.log,
				ClientName: "radar-pod", ClientVersion: buildinfo.Version}
			if a.cfg.NDT7CAFile != "" {
				pem, err := os.ReadFile(a.cfg.NDT7CAFile)
				if err != nil {
					return nil, fmt.Errorf("RADAR_NDT7_CA_FILE: %w", err)
				}
				pool, err := httpclient.LoadCertPool(pem)
				if err != nil {
					return nil, fmt.Errorf("RADAR_NDT7_CA_FILE %s: %w", a.cfg.NDT7CAFile, err)
				}
				opts.RootCAs = pool
			}
			runners = append(runners, ndt7.New(opts))
		case "ookla":
			runners = append(runners, ookla.New(ookla.Options{Bin: a.cfg.OoklaBin, Logger: a.log}))
		}
	}
	return runners, nil
}

// Health is the agent's health, for the /healthz endpoint.
func (a *Agent) Health() *telemetry.Health { return a.health }

// Run does the agent's work until ctx is done, then returns once every
// goroutine has stopped: a running test is cancelled and recorded, and the
// outbox is left consistent (every write is atomic).
//
// Run closes the outbox (releasing its directory lock) before it returns,
// so another agent, or a new one in the same process, can open it; an
// Agent runs once.
func (a *Agent) Run(ctx context.Context) error {
	defer a.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.metrics.BuildInfo.WithLabelValues("radar-agent", buildinfo.Version, buildinfo.Commit, buildinfo.Distribution()).Set(1)
	a.reportRunnerAvailability()

	var wg sync.WaitGroup
	spawn := func(name string, f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer a.sentry.RepanicAfterReport()
			f(ctx)
			a.log.Debug("stopped", "part", name)
		}()
	}
	spawn("main loop", a.mainLoop)
	spawn("test runs", a.testLoop)
	spawn("network check", a.netCheckLoop)
	spawn("clock", a.clockLoop)
	spawn("settle", a.settleLoop)

	if a.cfg.Standalone() {
		a.log.Info("standalone mode: no pods service; results go to "+ResultsFile,
			"tests_per_day", a.cfg.TestsPerDay, "data_dir", a.cfg.DataDir)
		spawn("schedule", a.scheduleLoop)
		wg.Wait()
		return nil
	}

	id, err := a.ensureIdentity(ctx)
	if err != nil {
		cancel()
		wg.Wait()
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	a.mu.Lock()
	a.identity = id
	a.mu.Unlock()
	spawn("uploads", func(ctx context.Context) { a.uploadLoop(ctx, id) })
	spawn("status fallback", func(ctx context.Context) { a.statusLoop(ctx, id) })
	spawn("channel", func(ctx context.Context) {
		a.newChannel(id).Run(ctx, &channelHandler{a: a, ctx: ctx})
	})
	wg.Wait()
	return nil
}

// close ends the agent's life once every goroutine has stopped: waiting
// local requests are released, and the outbox is closed.
func (a *Agent) close() {
	close(a.stopped)
	if c, ok := a.outbox.(io.Closer); ok {
		if err := c.Close(); err != nil {
			a.log.Warn("closing the outbox", "err", err)
		}
	}
}

// mainLoop is the loop /healthz vouches for: it dispatches service events
// and watches the updater's status. It never blocks on a test or a network
// call, so a stuck loop really means a stuck agent.
func (a *Agent) mainLoop(ctx context.Context) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	watcher := &updateWatcher{a: a}
	a.health.Beat()
	watcher.poll()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-a.events:
			a.handleEvent(ev)
		case <-tick.C:
			watcher.poll()
			a.updateOutboxMetrics()
		}
		a.health.Beat()
	}
}

// serviceEvent is a message from the service and the path it came by.
type serviceEvent struct {
	radar.Event
	source string // "channel" or "status"
}

// handleEvent acts on a message from the service (channel or status fallback).
func (a *Agent) handleEvent(ev serviceEvent) {
	switch ev.Kind {
	case radar.RunTest:
		a.requestRun(requestFor(ev.Interfaces), ev.source)
	case radar.Update:
		a.handOffUpdate(ev.Version, ev.BinaryURL, ev.source)
	case radar.WatchdogUpdate:
		a.log.Info("watchdog update announced; container pods have no watchdog, ignoring", "version", ev.Version)
	default:
		a.report("channel_message", "unrecognised message from the pods service", ev.Err, "raw", truncate(string(ev.Raw), 512))
	}
}

func (a *Agent) requestRun(r runRequest, source string) {
	a.metrics.TestRequested.WithLabelValues(source).Inc()
	a.noteOverBudget(source)
	merged, dropped := a.queue.add(r)
	a.metrics.TestQueue.Set(float64(a.queue.depth()))
	a.log.Info("test run requested", "source", source, "targets", r.targets(), "coalesced", merged)
	if dropped > 0 {
		a.log.Warn("test request refused: the pending run already names the most interfaces a run may test",
			"source", source, "refused", dropped, "max", radar.MaxTestInterfaces)
	}
}

// report logs at Error (which reaches Sentry) at most once an hour per key,
// and at Warn otherwise, so a persisting fault is visible without flooding.
func (a *Agent) report(key, msg string, err error, attrs ...any) {
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	if a.reports.allow(key, a.now()) {
		a.log.Error(msg, attrs...)
	} else {
		a.log.Warn(msg, attrs...)
	}
}

func (a *Agent) reportRunnerAvailability() {
	for _, r := range a.runners {
		up := 1.0
		if av, ok := r.(availability); ok && av.Available() != nil {
			up = 0
		}
		a.metrics.RunnerUp.WithLabelValues(r.Name()).Set(up)
	}
}

// sleep waits d or until ctx is done (backoff.Wait), or hands the wait to
// the test's hook.
func (a *Agent) sleep(ctx context.Context, why string, d time.Duration) error {
	if a.wait != nil {
		return a.wait(ctx, why, d)
	}
	return backoff.Wait(ctx, d)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

type throttle struct {
	mu    sync.Mutex
	every time.Duration
	last  map[string]time.Time
}

func (t *throttle) allow(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.last[key]; ok && now.Sub(last) < t.every {
		return false
	}
	t.last[key] = now
	return true
}
