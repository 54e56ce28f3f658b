// Package netemu owns emulated network links for benchmarks and tests: three
// network namespaces, server ⇄ veth ⇄ router ⇄ veth ⇄ client, with the
// router shaping each direction with tbf on the egress of its ports and
// delaying each direction with a delay line (NFQUEUE and a userspace
// FIFO), because this kernel has no sch_netem. Links have unique names, are
// torn down by Close, and leftovers of killed processes are removed by
// Sweep.
package netemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"
)

// DefaultPrefix starts the names of the namespaces this package creates.
const DefaultPrefix = "rpemu"

// The addresses are fixed: each namespace has its own stack, so they can
// never collide with the host's or another link's.
var (
	ServerAddr     = netip.MustParseAddr("10.77.1.2")
	routerToServer = netip.MustParseAddr("10.77.1.1")
	ClientAddr     = netip.MustParseAddr("10.77.2.2")
	routerToClient = netip.MustParseAddr("10.77.2.1")
)

// Interface names inside the namespaces (names are per namespace).
const (
	ifServer         = "eth0"  // in the server namespace
	ifClient         = "eth0"  // in the client namespace
	ifRouterToServer = "to-sv" // router port facing the server: shapes uploads
	ifRouterToClient = "to-cl" // router port facing the client: shapes downloads
)

// NFQUEUE numbers in the router namespace (queues are per namespace).
const (
	queueDownstream = 0 // server → client
	queueUpstream   = 1 // client → server
)

// Config describes a link.
type Config struct {
	// RateMbit shapes each direction to this many Mbit/s (tbf counts
	// Ethernet headers); 0 leaves the link unshaped.
	RateMbit float64
	// Delay is added to each direction (the RTT grows by twice this); 0
	// means no delay line.
	Delay time.Duration
	// DelayLineCommand, when set, runs the delay lines in a child process
	// inside the router namespace: argv of a program that passes the
	// arguments after it to DelayLineMain (usually the caller's own binary
	// and a subcommand). Empty runs them in this process, which is simpler
	// but lets this process's own load delay packets beyond Delay.
	DelayLineCommand []string
	// Prefix starts the namespace names; DefaultPrefix if empty. Sweep
	// takes the same prefix.
	Prefix string
	// Logger receives setup and teardown steps; nil discards them.
	Logger *slog.Logger
}

// Link is an emulated link. Its namespaces exist until Close.
type Link struct {
	Server, Router, Client Namespace
	// ServerAddr and ClientAddr are the endpoints' addresses.
	ServerAddr, ClientAddr netip.Addr

	cfg    Config
	log    *slog.Logger
	mu     sync.Mutex
	rate   float64
	delays []*DelayLine
	child  *delayChild
	closed bool
}

// testHook, when set by tests, runs after each setup step and fails the
// setup with its error, to prove that a half-built link is torn down.
var testHook func(step string) error

var linkSeq struct {
	sync.Mutex
	n int
}

// New builds a link. On error nothing is left behind. ctx bounds the setup
// only; the link lives until Close.
func New(ctx context.Context, cfg Config) (l *Link, err error) {
	if cfg.RateMbit < 0 || cfg.Delay < 0 {
		return nil, errors.New("netemu: rate and delay must not be negative")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	id, err := linkID()
	if err != nil {
		return nil, err
	}
	pid := os.Getpid()
	l = &Link{
		Server:     Namespace{Name: namespaceName(cfg.Prefix, pid, id, "sv")},
		Router:     Namespace{Name: namespaceName(cfg.Prefix, pid, id, "rt")},
		Client:     Namespace{Name: namespaceName(cfg.Prefix, pid, id, "cl")},
		ServerAddr: ServerAddr,
		ClientAddr: ClientAddr,
		cfg:        cfg,
		log:        log.With("link", id),
	}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("netemu: build link: %w", err), l.Close())
			l = nil
		}
	}()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"namespaces", l.addNamespaces},
		{"veth", l.wire},
		{"routing", l.route},
		{"delay", l.startDelay},
		{"shaping", func(ctx context.Context) error { return l.SetRate(ctx, cfg.RateMbit) }},
	}
	for _, s := range steps {
		if err := s.fn(ctx); err != nil {
			return l, fmt.Errorf("%s: %w", s.name, err)
		}
		if testHook != nil {
			if err := testHook(s.name); err != nil {
				return l, fmt.Errorf("%s: %w", s.name, err)
			}
		}
	}
	l.log.Info("link up", "server", l.Server.Name, "router", l.Router.Name, "client", l.Client.Name,
		"rate_mbit", cfg.RateMbit, "delay", cfg.Delay.String())
	return l, nil
}

// linkID is random (several processes may build links at once) and unique
// within the process.
func linkID() (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("netemu: link id: %w", err)
	}
	linkSeq.Lock()
	linkSeq.n++
	n := linkSeq.n
	linkSeq.Unlock()
	return hex.EncodeToString(b) + strconv.Itoa(n), nil
}

func (l *Link) addNamespaces(ctx context.Context) error {
	for _, ns := range []Namespace{l.Server, l.Router, l.Client} {
		if _, err := addNamespace(ctx, ns.Name); err != nil {
			return err
		}
	}
	return nil
}

// wire creates the veth pairs directly inside the namespaces, so no
// interface ever appears on the host.
func (l *Link) wire(ctx context.Context) error {
	pairs := []struct {
		routerIf, peer, peerIf string
		routerIP, peerIP       netip.Addr
	}{
		{ifRouterToServer, l.Server.Name, ifServer, routerToServer, ServerAddr},
		{ifRouterToClient, l.Client.Name, ifClient, routerToClient, ClientAddr},
	}
	for _, p := range pairs {
		cmds := [][]string{
			{"ip", "-n", l.Router.Name, "link", "add", p.routerIf, "type", "veth", "peer", "name", p.peerIf, "netns", p.peer},
			{"ip", "-n", l.Router.Name, "addr", "add", p.routerIP.String() + "/24", "dev", p.routerIf},
			{"ip", "-n", p.peer, "addr", "add", p.peerIP.String() + "/24", "dev", p.peerIf},
			{"ip", "-n", l.Router.Name, "link", "set", p.routerIf, "up"},
			{"ip", "-n", p.peer, "link", "set", p.peerIf, "up"},
			{"ip", "-n", p.peer, "route", "add", "default", "via", p.routerIP.String()},
		}
		for _, c := range cmds {
			if err := run(ctx, c[0], c[1:]...); err != nil {
				return err
			}
		}
	}
	return nil
}

// route makes the router forward and, when there is a delay, sends each
// direction's forwarded packets to its delay line's queue. Forwarding (not a
// bridge) keeps br_netfilter out of it; the hook is FORWARD, before the
// egress tbf, so a packet is delayed and then shaped like on a real path.
func (l *Link) route(ctx context.Context) error {
	if err := l.Router.WriteSysctl("net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	if l.cfg.Delay == 0 {
		return nil
	}
	for _, r := range []struct {
		in    string
		queue int
	}{{ifRouterToServer, queueDownstream}, {ifRouterToClient, queueUpstream}} {
		// Without --queue-bypass a packet is dropped, never passed undelayed,
		// if the delay line is not there.
		if err := run(ctx, "ip", "netns", "exec", l.Router.Name, "iptables", "-w", "-A", "FORWARD",
			"-i", r.in, "-j", "NFQUEUE", "--queue-num", strconv.Itoa(r.queue)); err != nil {
			return err
		}
	}
	return nil
}

func (l *Link) startDelay(ctx context.Context) error {
	if l.cfg.Delay == 0 {
		return nil
	}
	queues := []uint16{queueDownstream, queueUpstream}
	if len(l.cfg.DelayLineCommand) > 0 {
		c, err := startDelayChild(ctx, l.Router, l.cfg.DelayLineCommand, queues, l.cfg.Delay)
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.child = c
		l.mu.Unlock()
		return nil
	}
	for _, q := range queues {
		d, err := StartDelayLine(l.Router, q, l.cfg.Delay)
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.delays = append(l.delays, d)
		l.mu.Unlock()
	}
	return nil
}

// TBF returns the tbf burst and limit in bytes for rate and round-trip
// time: a burst of 2 ms at the rate (at least 32 KiB, or tbf cannot reach
// the rate with GSO-sized packets), a queue of one bandwidth-delay product
// (at least 64 KiB), as on an access link that is neither bufferbloated nor
// starved.
func TBF(rateMbit float64, rtt time.Duration) (burst, limit int) {
	bytesPerSec := rateMbit * 1e6 / 8
	burst = max(int(bytesPerSec*0.002), 32<<10)
	limit = max(int(bytesPerSec*rtt.Seconds()), 64<<10)
	return burst, limit
}

// SetRate reshapes both directions to rateMbit (0 removes the shaping),
// keeping the namespaces and the delay line: one link serves several rates.
func (l *Link) SetRate(ctx context.Context, rateMbit float64) error {
	if rateMbit < 0 {
		return errors.New("netemu: negative rate")
	}
	burst, limit := TBF(rateMbit, 2*l.cfg.Delay)
	for _, dev := range []string{ifRouterToServer, ifRouterToClient} {
		var err error
		if rateMbit == 0 {
			err = run(ctx, "tc", "-n", l.Router.Name, "qdisc", "replace", "dev", dev, "root", "pfifo", "limit", "1000")
		} else {
			err = run(ctx, "tc", "-n", l.Router.Name, "qdisc", "replace", "dev", dev, "root", "tbf",
				"rate", strconv.FormatFloat(rateMbit*1000, 'f', 0, 64)+"kbit",
				"burst", strconv.Itoa(burst), "limit", strconv.Itoa(limit))
		}
		if err != nil {
			return fmt.Errorf("shape %s: %w", dev, err)
		}
	}
	l.mu.Lock()
	l.rate = rateMbit
	l.mu.Unlock()
	l.log.Info("link shaped", "rate_mbit", rateMbit, "burst", burst, "limit", limit)
	return nil
}

// Rate is the current shaping in Mbit/s (0: unshaped).
func (l *Link) Rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate
}

// DelayStats returns the statistics of the downstream (server → client)
// and upstream delay lines; zero without a delay. A child process reports
// once a second, so its figures may be up to a second old (final after
// Close).
func (l *Link) DelayStats() (down, up DelayStats) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var stats []DelayStats
	if l.child != nil {
		stats = l.child.latest()
	}
	for _, d := range l.delays {
		stats = append(stats, d.Stats())
	}
	if len(stats) > 0 {
		down = stats[0]
	}
	if len(stats) > 1 {
		up = stats[1]
	}
	return down, up
}

// Close stops the delay lines and deletes the namespaces (with them every
// interface, qdisc and rule of the link). It is safe to call more than once
// and on a half-built link; processes still running inside the namespaces
// must be stopped first (Namespace.Command ties them to a context).
func (l *Link) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	delays := l.delays // kept: DelayStats still reads them after Close
	child := l.child
	l.mu.Unlock()
	var errs []error
	if child != nil {
		if err := child.stop(); err != nil {
			errs = append(errs, fmt.Errorf("delay line process: %w", err))
		}
	}
	for _, d := range delays {
		errs = append(errs, d.Close())
	}
	for _, ns := range []Namespace{l.Client, l.Router, l.Server} {
		if err := deleteNamespace(ns.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netemu: tear down: %w", err)
	}
	l.log.Info("link down")
	return nil
}
