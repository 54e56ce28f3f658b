//go:build linux && cgo

package ndt7

// The helper processes Run starts inside the emulated link's namespaces,
// the benchmark's own binary re-executed: the server and the delay lines.
// (The agent's runner is a program of its own: agentrun.)

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/radarpod/radarpod/internal/ndt7test"
	"github.com/radarpod/radarpod/internal/netemu"
)

// The names Run re-executes its binary with (the child's first argument).
const (
	childServer    = "ndt7-server"
	childDelayLine = "delayline"
)

// Child is a subcommand Run starts as a child process of its own binary.
type Child struct {
	Name    string
	Summary string
	// Main runs the child with the arguments after its name and returns
	// the exit status.
	Main func(args []string, stdout, stderr io.Writer) int
}

// Children are the subcommands the binary calling Run must run when its
// first argument names one of them.
func Children() []Child {
	return []Child{
		{childServer, "(used by ndt7) serve the real ndt-server's ndt7 handler until interrupted", serverMain},
		{childDelayLine, "(used by ndt7) run netemu delay lines in this network namespace until interrupted", netemu.DelayLineMain},
	}
}

// serverMain serves ndt7 on -listen and prints "listening HOST:PORT" once
// it accepts connections.
func serverMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(childServer, flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve ws on")
	dataDir := fs.String("datadir", "", "directory for ndt-server's result files (required)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "ndt7-server:", err)
		return 1
	}
	srv, err := ndt7test.Serve(ln, ndt7test.Config{DataDir: *dataDir})
	if err != nil {
		ln.Close()
		fmt.Fprintln(stderr, "ndt7-server:", err)
		return 1
	}
	fmt.Fprintf(stdout, "listening %s\n", srv.Addr)
	<-ctx.Done()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(stderr, "ndt7-server: close:", err)
		return 1
	}
	return 0
}
