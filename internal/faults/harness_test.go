package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/benchreport"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radartest"
)

var (
	fullFlag = flag.Bool("faults.full", false, "run the drills at full size (make faults): 100 kills, a 4-minute outage, every kind of garbage")
	seedFlag = flag.Uint64("faults.seed", 0, "seed of the drills' random choices; 0 picks one (it is logged, so a failure can be replayed)")
)

// drillSize is how big the drills are: short for `make test`, full for
// `make faults`.
type drillSize struct {
	name string
	// kills is how many times the kill drill SIGKILLs the agent.
	kills int
	// outage is how long uploads fail in the outage drill, and testEvery
	// how often the service requests a test meanwhile: a test every few
	// seconds instead of four a day compresses days of outage into minutes.
	outage, testEvery time.Duration
	// evictions is how many evictions the disk drill waits for.
	evictions int
	// allGarbage sends every kind of garbage, not a representative subset
	// (each refused registration doubles the agent's backoff).
	allGarbage bool
}

func size() drillSize {
	if *fullFlag {
		return drillSize{name: "full", kills: 100, outage: 4 * time.Minute, testEvery: 2 * time.Second, evictions: 25, allGarbage: true}
	}
	return drillSize{name: "short", kills: 10, outage: time.Minute, testEvery: 2 * time.Second, evictions: 6}
}

// wait bounds every wait for the agent to do something; generous because
// the machine is shared. Nothing asserts on how long anything took.
const wait = 3 * time.Minute

// figures collects what the drills measured; TestMain records them (full
// size only, so a shortened run never overwrites the real figures).
var figures struct {
	mu   sync.Mutex
	list []benchreport.Figure
}

func addFigure(f benchreport.Figure) {
	f.Command = "make faults"
	figures.mu.Lock()
	defer figures.mu.Unlock()
	figures.list = append(figures.list, f)
}

func TestMain(m *testing.M) {
	flag.Parse()
	// The drills spend their time waiting on agents, not computing: run
	// them all at once rather than GOMAXPROCS at a time (two on a small
	// machine), unless -parallel says otherwise.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		flag.Set("test.parallel", "8")
	}
	code := m.Run()
	proctest.Cleanup()
	// Figures are recorded even when a drill failed: the drills that ran
	// still measured something, and a miss must show in bench/results.json
	// rather than leave the last good figures standing.
	if *fullFlag && len(figures.list) > 0 {
		root, err := proctest.ModuleRoot()
		if err == nil {
			err = benchreport.Write(root, "faults", figures.list)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "faults: recording figures:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// newRand returns the drill's random source and logs its seed.
func newRand(t *testing.T) *lockedRand {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("random seed %d (replay with -args -faults.seed=%d)", seed, seed)
	return &lockedRand{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// lockedRand is a seeded source shared by the server's handlers and the
// test goroutine.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func (l *lockedRand) IntN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

func (l *lockedRand) Duration(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(l.IntN(int(hi-lo)+1))
}

// startService starts the pods-service double. Unless a drill kills the
// agent mid-request, every protocol violation fails the test; killed
// requests leave truncated bodies the double rightly notes, and only
// those are forgiven.
func startService(t *testing.T, forgiveTruncated bool) *radartest.Server {
	t.Helper()
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second, AllowViolations: forgiveTruncated})
	if forgiveTruncated {
		t.Cleanup(func() {
			for _, v := range srv.Violations() {
				if !strings.HasPrefix(v.Detail, "reading body:") {
					t.Errorf("pods service protocol violation: %s", v)
				}
			}
		})
	}
	return srv
}

// pod is the real radar-agent binary, started and restarted on one data
// directory against the double.
type pod struct {
	t       *testing.T
	bin     string
	env     map[string]string
	dataDir string
	// addr is the health and metrics endpoint; empty when disabled.
	addr string

	mu      sync.Mutex
	proc    *proctest.Process
	earlier []string // output of earlier incarnations
}

type podOptions struct {
	dataDir string
	// metrics enables /healthz and /metrics on a loopback port.
	metrics bool
	env     map[string]string
}

func newPod(t *testing.T, srv *radartest.Server, ooklaBin string, o podOptions) *pod {
	t.Helper()
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	p := &pod{t: t, bin: proctest.Build(t, "./cmd/radar-agent"), dataDir: o.dataDir}
	p.env = map[string]string{
		"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": o.dataDir, "RADAR_TESTS": "ookla",
		"RADAR_OOKLA_BIN": ooklaBin, "RADAR_PING_INTERVAL": "1s", "RADAR_RECONNECT_MAX": "2s", "RADAR_TEST_TIMEOUT": "30s",
		"RADAR_LOG_FORMAT": "json", "RADAR_LOG_LEVEL": "info", "RADAR_LISTEN_ADDR": "",
	}
	if o.metrics {
		p.addr = proctest.FreeAddr(t)
		p.env["RADAR_LISTEN_ADDR"] = p.addr
	}
	for k, v := range o.env {
		p.env[k] = v
	}
	return p
}

func (p *pod) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		p.earlier = append(p.earlier, p.proc.Output())
	}
	p.proc = proctest.Start(p.t, p.bin, p.env)
}

// kill sends SIGKILL (to the agent's process group: the fake CLI runs in a
// group of its own and, like a real CLI in a dying container, may outlive
// the agent by a moment) and waits for the exit.
func (p *pod) kill() {
	p.mu.Lock()
	proc := p.proc
	p.mu.Unlock()
	proc.Kill()
}

func (p *pod) process() *proctest.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc
}

func (p *pod) pid() int { return p.process().Cmd.Process.Pid }

// output is everything every incarnation logged.
func (p *pod) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	all := strings.Join(p.earlier, "")
	if p.proc != nil {
		all += p.proc.Output()
	}
	return all
}

// logLine is one JSON log record of the agent.
type logLine struct {
	Level  string `json:"level"`
	Msg    string `json:"msg"`
	Reason string `json:"reason"`
}

func (p *pod) logs() []logLine {
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(p.output()))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg != "" {
			out = append(out, l)
		}
	}
	return out
}

// countLogs counts the records at level (any level when "") whose message
// contains msg.
func (p *pod) countLogs(level, msg string) int {
	n := 0
	for _, l := range p.logs() {
		if (level == "" || l.Level == level) && strings.Contains(l.Msg, msg) {
			n++
		}
	}
	return n
}

// alive reports whether the current incarnation is running.
func (p *pod) alive() bool { return !p.process().Exited() }

// identityStored reports whether the pod has registered and kept its
// identity.
func (p *pod) identityStored() bool {
	_, err := os.Stat(filepath.Join(p.dataDir, "identity.json"))
	return err == nil
}

// testRunning reports whether the running agent holds the test lock (a
// killed one leaves its lock behind; the next run takes it over).
func (p *pod) testRunning() bool {
	var lock handoff.LockInfo
	b, err := os.ReadFile(filepath.Join(p.dataDir, handoff.TestLockFile))
	if err != nil {
		return false
	}
	if json.Unmarshal(b, &lock) != nil {
		return true // being written
	}
	return lock.PID == p.pid()
}

// ledger is the pod's own record of every test (results.jsonl) and the
// number of its lines that do not parse.
func (p *pod) ledger() (entries []agent.ResultEntry, torn int) {
	b, err := os.ReadFile(filepath.Join(p.dataDir, agent.ResultsFile))
	if err != nil {
		return nil, 0
	}
	entries, err = agent.ReadResults(bytes.NewReader(b))
	if err != nil {
		p.t.Fatalf("read %s: %v", agent.ResultsFile, err)
	}
	for line := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line != "" && !json.Valid([]byte(line)) {
			torn++
		}
	}
	return entries, torn
}

// produced lists, in the order the pod stored them, the unique results
// the pod's ledger says it stored for upload: a line with an outbox id is
// written only after the outbox acknowledged the Put.
func (p *pod) produced() []int {
	entries, _ := p.ledger()
	var ns []int
	for _, e := range entries {
		if e.Runner != "ookla" || e.OutboxID == "" || e.Error != "" || e.DownloadMbps == nil {
			continue
		}
		n, ok := ooklatest.UniqueSeqOfDownload(*e.DownloadMbps)
		if !ok {
			p.t.Fatalf("ledger entry %+v is not a unique fake result", e)
		}
		ns = append(ns, n)
	}
	return ns
}

var resultIDPattern = regexp.MustCompile(`"id":"(00000000-0000-4000-8000-[0-9]{12})"`)

// outboxRecords maps the record files in the outbox to the unique result
// each holds. Read while the agent is dead, they are exactly the Puts
// that completed and were not yet removed.
func (p *pod) outboxRecords() map[string]int {
	dir := filepath.Join(p.dataDir, "outbox")
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, de := range des {
		id, ok := strings.CutSuffix(de.Name(), ".rec")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			continue // removed meanwhile by a live agent
		}
		m := resultIDPattern.FindSubmatch(b)
		if m == nil {
			p.t.Fatalf("outbox record %s holds no unique result", de.Name())
		}
		n, _ := ooklatest.UniqueSeq(string(m[1]))
		out[id] = n
	}
	return out
}

// metric reads one series from /metrics: name is the full series as
// exposed, labels included (`radar_uploads_total{result="server"}`).
// ok is false when the endpoint did not answer or has no such series.
func (p *pod) metric(name string) (float64, bool) {
	body, err := p.get("/metrics")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// healthz returns the status /healthz answers (0 when it did not answer).
func (p *pod) healthz() (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func (p *pod) get(path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", path, resp.Status)
	}
	return string(b), err
}

// memory is the agent's resident memory from /proc: now and its peak
// (VmHWM), in bytes.
func memory(pid int) (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return rss, peak, nil
}

// delivered is what the service stored, by unique result: how often each
// was stored and the order of first arrival. Every stored result must be
// one the fake printed, byte for byte, and parse the way the service
// parses it.
type delivered struct {
	times  map[int]int
	order  []int
	stored int
}

func (d delivered) duplicates() int { return d.stored - len(d.times) }

func deliveries(t *testing.T, srv *radartest.Server) delivered {
	t.Helper()
	d := delivered{times: map[int]int{}}
	for _, m := range srv.Measurements() {
		if m.Style != "OOKLA" || m.Ookla == nil {
			t.Fatalf("stored measurement %d is not a parsed OOKLA result: %v", m.Seq, m.ParseErr)
		}
		n, ok := ooklatest.UniqueSeq(m.Ookla.ResultID)
		if !ok {
			t.Fatalf("stored measurement %d has result.id %q, which the fake never printed", m.Seq, m.Ookla.ResultID)
		}
		if !bytes.Equal(bytes.TrimSpace(m.Raw), ooklatest.UniqueResult(n)) {
			t.Fatalf("stored result %d is not what the fake printed:\n%s", n, m.Raw)
		}
		if d.times[n] == 0 {
			d.order = append(d.order, n)
		}
		d.times[n]++
		d.stored++
	}
	return d
}

// missing lists the ns that were not delivered.
func (d delivered) missing(ns []int) []int {
	var out []int
	for _, n := range ns {
		if d.times[n] == 0 {
			out = append(out, n)
		}
	}
	return out
}

// waitUntil polls cond until it holds, failing the test with what after
// wait (proctest then logs the agent's output).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	proctest.WaitFor(t, wait, what, cond)
}

// requester plays the service asking for tests every period until stopped.
type requester struct {
	stop chan struct{}
	done chan struct{}
}

func requestTests(srv *radartest.Server, every time.Duration) *requester {
	r := &requester{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			srv.SendRunTest(nil)
			select {
			case <-r.stop:
				return
			case <-t.C:
			}
		}
	}()
	return r
}

func (r *requester) halt() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

// waitIdle waits until the pod has no test running or queued and the
// service no longer has a request pending for it.
func waitIdle(t *testing.T, srv *radartest.Server, p *pod) {
	t.Helper()
	srv.SetPendingTest(false)
	stable := 0
	waitUntil(t, "the pod to finish its tests", func() bool {
		if p.testRunning() {
			stable = 0
			return false
		}
		stable++
		// A request may sit in the agent's queue for a moment between two
		// runs: idle several polls in a row is idle.
		return stable >= 40
	})
}
