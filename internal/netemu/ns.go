package netemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns` keeps the bind mounts that name namespaces.
const netnsDir = "/run/netns"

// Namespace is a named network namespace (`ip netns` style).
type Namespace struct {
	// Name is the name under /run/netns, usable with `ip netns exec`.
	Name string
}

// Path is the namespace's bind mount.
func (ns Namespace) Path() string { return filepath.Join(netnsDir, ns.Name) }

// Do runs fn on an OS thread that has joined ns. Sockets fn creates belong to
// ns for their whole life, wherever they are used afterwards: that is how one
// process serves, dials and shapes in several namespaces. fn must not start
// goroutines that expect to be in ns (they run on other threads).
func (ns Namespace) Do(fn func() error) error {
	target, err := unix.Open(ns.Path(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", ns.Name, err)
	}
	defer unix.Close(target)

	errc := make(chan error, 1)
	// A fresh goroutine, so the caller's thread never changes namespace; if
	// switching back fails, the goroutine exits still locked and the runtime
	// discards the thread instead of reusing it in the wrong namespace.
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer unix.Close(home)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", ns.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave netns %s: %w", ns.Name, err))
			return // still locked: the thread dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Listen opens a listener inside ns.
func (ns Namespace) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := ns.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// DialContext dials from inside ns.
func (ns Namespace) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Command returns a command that runs name inside ns (through `ip netns
// exec`, which execs it: the process, its rusage and its exit status are the
// command's own). It is killed when ctx is done or when the calling process
// dies, so no measurement outlives its benchmark.
func (ns Namespace) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Interrupt first so a child can clean up, then kill.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// WriteSysctl sets a sysctl of ns, e.g. "net/ipv4/ip_forward": /proc/sys/net
// shows the namespace of the thread that opens it.
func (ns Namespace) WriteSysctl(key, value string) error {
	return ns.Do(func() error {
		if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0); err != nil {
			return fmt.Errorf("sysctl %s in %s: %w", key, ns.Name, err)
		}
		return nil
	})
}

// ReadSysctl reads a sysctl of ns.
func (ns Namespace) ReadSysctl(key string) (string, error) {
	var v string
	err := ns.Do(func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", key))
		if err != nil {
			return fmt.Errorf("sysctl %s in %s: %w", key, ns.Name, err)
		}
		v = strings.TrimSpace(string(b))
		return nil
	})
	return v, err
}

// run runs a setup tool and returns its failure with what it printed.
func run(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// addNamespace creates a named namespace with loopback up.
func addNamespace(ctx context.Context, name string) (Namespace, error) {
	if err := run(ctx, "ip", "netns", "add", name); err != nil {
		return Namespace{}, err
	}
	ns := Namespace{Name: name}
	if err := run(ctx, "ip", "-n", name, "link", "set", "lo", "up"); err != nil {
		return ns, err
	}
	return ns, nil
}

// deleteNamespace kills the processes still inside a named namespace and
// removes it; its interfaces (and the veth peers in other namespaces),
// routes, qdiscs and firewall rules go with it. Missing namespaces are not
// an error.
func deleteNamespace(name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A process left inside would keep the namespace, and whatever it is
	// doing, alive after its name is gone. Only our own processes can be in
	// these namespaces; this process itself shows up while one of its
	// threads visits (Namespace.Do) and must be spared.
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", name).Output()
	if err != nil {
		return fmt.Errorf("ip netns pids %s: %w", name, err)
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	return run(ctx, "ip", "netns", "delete", name)
}

// namePrefix marks namespaces made by this package: prefix-PID-ID-role.
// The PID lets Sweep tell a dead owner's leftovers from a live run's.
func namespaceName(prefix string, pid int, id, role string) string {
	return fmt.Sprintf("%s-%d-%s-%s", prefix, pid, id, role)
}

// ownerPID parses the owner PID out of a namespace name made with prefix.
func ownerPID(prefix, name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix+"-")
	if !ok {
		return 0, false
	}
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// Sweep deletes the namespaces a previous process using prefix left behind
// when it was killed before it could tear down (kill -9, a crash): those
// whose owner PID no longer runs, with any process still inside them. Live runs' namespaces are left alone. It
// returns the names it deleted.
func Sweep(prefix string) ([]string, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sweep namespaces: %w", err)
	}
	var deleted []string
	var errs []error
	for _, e := range entries {
		pid, ok := ownerPID(prefix, e.Name())
		if !ok || processAlive(pid) {
			continue
		}
		if err := deleteNamespace(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, e.Name())
	}
	return deleted, errors.Join(errs...)
}

func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// Namespaces lists the namespaces whose names start with prefix (for
// teardown checks and diagnostics).
func Namespaces(prefix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
