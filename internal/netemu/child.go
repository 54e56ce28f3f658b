package netemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The delay lines can run in a process of their own (Config.DelayLineCommand),
// where nothing else competes for the Go scheduler: a benchmark's load in
// the parent then cannot make packets late. The child is the caller's own
// binary re-executed inside the router namespace; it must hand the
// arguments the link appends to DelayLineMain. Protocol on its stdout: the
// line "ready" once the queues are bound, then one JSON array of
// DelayStats (one per queue, in argument order) per statsInterval and at
// exit.

const statsInterval = time.Second

// DelayLineMain runs delay lines in the current network namespace until
// SIGINT or SIGTERM; args are the flags a Link passes (-queues 0,1 -delay
// 10ms). It returns the process exit status.
func DelayLineMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("delayline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	queues := fs.String("queues", "0", "comma-separated NFQUEUE numbers")
	delay := fs.Duration("delay", 10*time.Millisecond, "time each packet is held")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var nums []uint16
	for _, s := range strings.Split(*queues, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
		if err != nil {
			fmt.Fprintf(stderr, "delayline: bad queue %q\n", s)
			return 2
		}
		nums = append(nums, uint16(n))
	}
	// One P per line plus one for the rest: a line never waits for a P.
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), len(nums)+1))
	// A line's thread back from ppoll during a stop-the-world waits for
	// the world to restart, which on a starved machine takes as long as
	// the slowest thread of this process takes to be scheduled. The lines
	// allocate nothing per packet, only the report once a second, so the
	// collector stays off until the heap reaches a size it never does.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(64 << 20)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var lines []*DelayLine
	defer func() {
		for _, d := range lines {
			d.Close()
		}
	}()
	for _, n := range nums {
		d, err := startDelayLine(n, *delay)
		if err != nil {
			fmt.Fprintf(stderr, "delayline: queue %d: %v\n", n, err)
			return 1
		}
		lines = append(lines, d)
	}
	out := bufio.NewWriter(stdout)
	emit := func() {
		stats := make([]DelayStats, len(lines))
		for i, d := range lines {
			stats[i] = d.Stats()
		}
		b, _ := json.Marshal(stats)
		out.Write(append(b, '\n'))
		out.Flush()
	}
	fmt.Fprintln(out, "ready")
	out.Flush()
	t := time.NewTicker(statsInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			emit()
		case <-ctx.Done():
			emit()
			return 0
		}
	}
}

// delayChild is a running DelayLineMain process.
type delayChild struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	done   chan struct{} // closed when stdout is drained and the process waited for
	mu     sync.Mutex
	stats  []DelayStats
	err    error
	stderr strings.Builder
}

// startDelayChild runs argv inside ns and waits until its queues are bound.
func startDelayChild(ctx context.Context, ns Namespace, argv []string, queues []uint16, delay time.Duration) (*delayChild, error) {
	qs := make([]string, len(queues))
	for i, q := range queues {
		qs[i] = strconv.Itoa(int(q))
	}
	args := append(append([]string{}, argv[1:]...), "-queues", strings.Join(qs, ","), "-delay", delay.String())
	cctx, cancel := context.WithCancel(context.Background()) // lives as long as the link
	c := &delayChild{cancel: cancel, done: make(chan struct{})}
	c.cmd = ns.Command(cctx, argv[0], args...)
	c.cmd.Stderr = &limitedWriter{w: &c.stderr, n: 16 << 10}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start delay line process: %w", err)
	}
	ready := make(chan struct{})
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Bytes()
			if string(line) == "ready" {
				once.Do(func() { close(ready) })
				continue
			}
			var s []DelayStats
			if json.Unmarshal(line, &s) == nil {
				c.mu.Lock()
				c.stats = s
				c.mu.Unlock()
			}
		}
		werr := c.cmd.Wait()
		c.mu.Lock()
		c.err = werr
		c.mu.Unlock()
	}()
	select {
	case <-ready:
		return c, nil
	case <-c.done:
		cancel()
		return nil, fmt.Errorf("delay line process exited: %v: %s", c.exitErr(), strings.TrimSpace(c.stderr.String()))
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, errors.New("delay line process not ready after 30s")
	}
}

func (c *delayChild) exitErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *delayChild) latest() []DelayStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// stop interrupts the child (it reports its final stats) and waits for it.
func (c *delayChild) stop() error {
	c.cancel()
	<-c.done
	err := c.exitErr()
	if errors.Is(err, context.Canceled) {
		return nil // exec's way of saying it exited cleanly after our interrupt
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && !ee.Exited() {
		// Ended by our interrupt: that is how it stops.
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == os.Interrupt {
			return nil
		}
	}
	return err
}

type limitedWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
