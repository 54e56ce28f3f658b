//go:build linux

package netemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the delay-line process and as a process that
// builds a link and is then killed.
const (
	childDelayLine = "netemu-delayline"
	childHoldLink  = "netemu-holdlink"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case childDelayLine:
			os.Exit(DelayLineMain(os.Args[2:], os.Stdout, os.Stderr))
		case childHoldLink:
			os.Exit(holdLink(os.Args[2]))
		case childAlloc:
			os.Exit(allocAndSpin(os.Args[2]))
		}
	}
	os.Exit(m.Run())
}

// holdLink builds a link, prints its namespace names and waits to be killed.
func holdLink(prefix string) int {
	l, err := New(context.Background(), Config{RateMbit: 10, Delay: 5 * time.Millisecond, Prefix: prefix,
		DelayLineCommand: delayLineCommand()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode([]string{l.Server.Name, l.Router.Name, l.Client.Name})
	select {}
}

func delayLineCommand() []string {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return []string{exe, childDelayLine}
}

// testPrefix keeps the tests' namespaces apart from a benchmark running at
// the same time (which uses DefaultPrefix).
func testPrefix(t *testing.T) string {
	return fmt.Sprintf("rpemut%d", os.Getpid()%100000)
}

func newLink(t *testing.T, cfg Config) *Link {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("netemu tests need root (network namespaces, tc, iptables)")
	}
	cfg.Prefix = testPrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return l
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func medianOf(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// checkGoodput holds a bulk TCP flow to the single-flow ceiling of a
// shaped link, 1448/1514 = 95.6% of the rate, within a few points: above
// it the shaper is not shaping, well below it the link is broken. A run
// whose delay lines were starved judges nothing, either way (a stall stops
// the flow's ACK clock; the burst after it can overshoot), so it is
// measured again, up to three times.
func checkGoodput(t *testing.T, l *Link, downstream bool) {
	t.Helper()
	const (
		attempts = 3
		window   = 3 * time.Second
	)
	for attempt := 1; ; attempt++ {
		down0, up0 := l.DelayStats()
		mbps, err := l.Goodput(testCtx(t), downstream, time.Second, window)
		if err != nil {
			t.Fatal(err)
		}
		frac := mbps / l.Rate()
		t.Logf("rate %g Mbit/s, downstream=%v: goodput %.2f Mbit/s = %.1f%%", l.Rate(), downstream, mbps, 100*frac)
		if frac >= 0.90 && frac <= 0.97 {
			return
		}
		time.Sleep(statsInterval + 500*time.Millisecond) // the last report lands
		down1, up1 := l.DelayStats()
		down, up := down1.Sub(down0), up1.Sub(up0)
		starved := linesStarved(down, up, window)
		if starved == "" {
			t.Errorf("goodput %.2f Mbit/s is %.1f%% of the %g Mbit/s rate, want 90–97%% (ceiling 95.6%%); the delay lines were on time: down %+v up %+v",
				mbps, 100*frac, l.Rate(), down, up)
			return
		}
		t.Logf("attempt %d: %s: the machine starved them, so this run cannot judge the link's rate", attempt, starved)
		if attempt == attempts {
			t.Logf("the rate is not judged: the delay lines were starved on all %d attempts", attempts)
			return
		}
	}
}

// linesStarved says how the delay lines fell behind in an interval around
// a measurement window, or "" if they kept time. Either many packets came
// late, or the lines' threads were not running, while packets were due, for
// a fiftieth of the window: a stall that long costs the flow that share of
// the window at least, a third of the band's room below the ceiling.
func linesStarved(down, up DelayStats, window time.Duration) string {
	packets, late, behind := down.Packets+up.Packets, down.Late+up.Late, down.Behind+up.Behind
	switch {
	case packets > 0 && float64(late) > 0.02*float64(packets):
		return fmt.Sprintf("the delay lines released %d of %d packets (%.1f%%) over a millisecond late", late, packets, 100*float64(late)/float64(packets))
	case behind > window/50:
		return fmt.Sprintf("the delay lines were %s behind (down %s, up %s)", behind.Round(time.Millisecond),
			down.Behind.Round(time.Millisecond), up.Behind.Round(time.Millisecond))
	}
	return ""
}

// checkRTT holds the ping RTT to twice the one-way delay: never below it
// (the delay line cannot release early) and close above it.
func checkRTT(t *testing.T, l *Link, delay time.Duration) {
	t.Helper()
	rtts, err := l.Ping(testCtx(t), 20, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	want := 2 * delay
	lo, med := slices.Min(rtts), medianOf(rtts)
	t.Logf("RTT min %s median %s max %s (%d replies)", lo, med, slices.Max(rtts), len(rtts))
	if lo < want-2*time.Duration(releaseSlack) {
		t.Errorf("min RTT %s is below the %s the delay line adds", lo, want)
	}
	// Generous: a shared machine may delay a reply, never most of them.
	if med > want+5*time.Millisecond {
		t.Errorf("median RTT %s, want about %s", med, want)
	}
	if len(rtts) < 18 {
		t.Errorf("%d of 20 pings answered", len(rtts))
	}
}

func TestLinkShapesAndDelays(t *testing.T) {
	const delay = 10 * time.Millisecond
	l := newLink(t, Config{RateMbit: 50, Delay: delay, DelayLineCommand: delayLineCommand()})
	checkRTT(t, l, delay)
	checkGoodput(t, l, true)
	checkGoodput(t, l, false)

	// Reshaping keeps the link and its delay.
	if err := l.SetRate(testCtx(t), 20); err != nil {
		t.Fatal(err)
	}
	checkGoodput(t, l, true)
	checkRTT(t, l, delay)

	// Every packet went through the delay lines and none was lost there.
	time.Sleep(statsInterval + 500*time.Millisecond)
	down, up := l.DelayStats()
	t.Logf("delay lines: down %+v up %+v", down, up)
	for name, s := range map[string]DelayStats{"down": down, "up": up} {
		if s.Packets < 1000 || s.Errors != 0 || s.Failed {
			t.Errorf("%s delay line: %+v, want thousands of packets and no errors", name, s)
		}
		if s.MeanHold < delay || s.MeanHold > delay+2*time.Millisecond {
			t.Errorf("%s delay line held packets %s on average, want about %s", name, s.MeanHold, delay)
		}
	}
}

func TestInProcessDelayLine(t *testing.T) {
	const delay = 15 * time.Millisecond
	l := newLink(t, Config{RateMbit: 30, Delay: delay})
	checkRTT(t, l, delay)
	checkGoodput(t, l, true)
	down, up := l.DelayStats()
	if down.Packets == 0 || up.Packets == 0 {
		t.Errorf("delay lines saw no packets: %+v %+v", down, up)
	}
}

func TestUnshapedUndelayedLink(t *testing.T) {
	l := newLink(t, Config{})
	rtts, err := l.Ping(testCtx(t), 10, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Far below any delay the line would add: there is none.
	if med := medianOf(rtts); med > 5*time.Millisecond {
		t.Errorf("median RTT %s on a link without delay", med)
	}
	mbps, err := l.Goodput(testCtx(t), true, 200*time.Millisecond, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("unshaped goodput %.0f Mbit/s", mbps)
	if mbps < 200 {
		t.Errorf("unshaped veth carried only %.0f Mbit/s", mbps)
	}
}

// nsPIDs lists the processes inside a namespace.
func nsPIDs(t *testing.T, name string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v", name, err)
	}
	return strings.Fields(string(out))
}

func ipNetnsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	return string(out)
}

func checkGone(t *testing.T, names ...string) {
	t.Helper()
	list := ipNetnsList(t)
	for _, n := range names {
		if strings.Contains(list, n) {
			t.Errorf("namespace %s still exists", n)
		}
		if _, err := os.Stat(netnsDir + "/" + n); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s/%s still exists (%v)", netnsDir, n, err)
		}
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	l := newLink(t, Config{RateMbit: 10, Delay: 5 * time.Millisecond, DelayLineCommand: delayLineCommand()})
	names := []string{l.Server.Name, l.Router.Name, l.Client.Name}
	if pids := nsPIDs(t, l.Router.Name); len(pids) != 1 {
		t.Fatalf("router namespace runs %v, want the delay line process", pids)
	}
	// A process someone left running in a namespace is killed: it would
	// otherwise keep the namespace, and whatever it does, alive unnamed.
	sleeper := exec.Command("ip", "netns", "exec", l.Client.Name, "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleeper.Process.Kill()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checkGone(t, names...)
	left, err := Namespaces(testPrefix(t))
	if err != nil || len(left) != 0 {
		t.Errorf("namespaces left: %v %v", left, err)
	}
	err = sleeper.Wait()
	if ws, ok := sleeper.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("process left in the namespace ended with %v, want killed by Close", err)
	}
}

func TestFailedSetupLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("netemu tests need root")
	}
	for _, step := range []string{"namespaces", "veth", "routing", "delay", "shaping"} {
		t.Run(step, func(t *testing.T) {
			injected := errors.New("injected failure")
			testHook = func(s string) error {
				if s == step {
					return injected
				}
				return nil
			}
			defer func() { testHook = nil }()
			l, err := New(testCtx(t), Config{RateMbit: 10, Delay: 5 * time.Millisecond, Prefix: testPrefix(t),
				DelayLineCommand: delayLineCommand()})
			if !errors.Is(err, injected) || l != nil {
				t.Fatalf("New = %v, %v; want the injected failure", l, err)
			}
			left, err := Namespaces(testPrefix(t))
			if err != nil || len(left) != 0 {
				t.Errorf("namespaces left after a failed setup: %v %v", left, err)
			}
		})
	}
}

func TestSweepRemovesLeftoversOfKilledProcess(t *testing.T) {
	prefix := testPrefix(t)
	// A live owner's link must survive the sweep.
	live := newLink(t, Config{RateMbit: 10})

	cmd := exec.Command(os.Args[0], childHoldLink, prefix)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var names []string
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		cmd.Wait()
		t.Fatal("link holder printed nothing")
	}
	if err := json.Unmarshal(sc.Bytes(), &names); err != nil || len(names) != 3 {
		t.Fatalf("link holder said %q: %v", sc.Text(), err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	// kill -9 skips every cleanup: the namespaces stay, but the delay line
	// process dies with its parent.
	if !strings.Contains(ipNetnsList(t), names[1]) {
		t.Fatalf("namespace %s vanished before the sweep; the test proves nothing", names[1])
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(nsPIDs(t, names[1])) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("delay line process outlived its killed parent: %v", nsPIDs(t, names[1]))
		}
		time.Sleep(50 * time.Millisecond)
	}

	swept, err := Sweep(prefix)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(swept)
	want := slices.Sorted(slices.Values(names))
	if !slices.Equal(swept, want) {
		t.Errorf("Sweep removed %v, want %v", swept, want)
	}
	checkGone(t, names...)
	if !strings.Contains(ipNetnsList(t), live.Router.Name) {
		t.Errorf("Sweep removed the live link's namespace %s", live.Router.Name)
	}
}

func TestOwnerPID(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{namespaceName("rpemu", 1234, "abc1", "rt"), 1234, true},
		{"rpemu-1234-abc1-sv", 1234, true},
		{"rpemuX-1234-abc1-sv", 0, false},
		{"rpemu-x-abc1-sv", 0, false},
		{"rpemu-0-abc1-sv", 0, false},
		{"other-1234-abc1-sv", 0, false},
		{"rpemu-1234", 0, false},
	} {
		pid, ok := ownerPID("rpemu", tc.name)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("ownerPID(%q) = %d, %v; want %d, %v", tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
}

func TestTBF(t *testing.T) {
	for _, tc := range []struct {
		rate         float64
		rtt          time.Duration
		burst, limit int
	}{
		{20, 20 * time.Millisecond, 32 << 10, 64 << 10}, // floors: 5 KB burst, 50 KB BDP
		{100, 20 * time.Millisecond, 32 << 10, 250000},  // 25 KB burst, 250 KB BDP
		{500, 20 * time.Millisecond, 125000, 1250000},   // 2 ms and one BDP
		{1000, 40 * time.Millisecond, 250000, 5000000},
	} {
		burst, limit := TBF(tc.rate, tc.rtt)
		if burst != tc.burst || limit != tc.limit {
			t.Errorf("TBF(%g, %s) = %d, %d; want %d, %d", tc.rate, tc.rtt, burst, limit, tc.burst, tc.limit)
		}
	}
}
