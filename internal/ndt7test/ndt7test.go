//go:build linux && cgo

// Package ndt7test runs M-Lab's real ndt-server (v0.25.0, its ndt7 handler)
// in-process, as the peer of NDT7 tests: on 127.0.0.1 for go tests (ws, or
// wss with a freshly generated CA), or on any listener a program hands it
// (the fidelity benchmark serves from another network namespace). It needs
// cgo because ndt-server reads BBR state through it.
package ndt7test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m-lab/ndt-server/data"
	"github.com/m-lab/ndt-server/ndt7/handler"
	"github.com/m-lab/ndt-server/ndt7/spec"
	"github.com/m-lab/ndt-server/netx"
	"github.com/m-lab/tcp-info/eventsocket"
)

// ShortTestParams are the query parameters a client adds to end the download
// early: ndt-server's early_exit, the only value v0.25.0 accepts (250 MB
// acknowledged), which loopback reaches in well under a second. The upload
// has no server-side equivalent; clients bound it themselves (the ndt7
// runner's SubtestDuration). Production clients send neither.
func ShortTestParams() url.Values {
	return url.Values{spec.EarlyExitParameterName: {spec.ValidEarlyExitValues[0]}}
}

// ShortUpload is a client-side subtest bound that still yields several
// server measurements (they come every 25–625 ms).
const ShortUpload = 2 * time.Second

// Options configure Start.
type Options struct {
	// TLS serves wss with a certificate for 127.0.0.1 and localhost, signed
	// by a CA generated for this server alone.
	TLS bool
}

// Config configures Serve.
type Config struct {
	// DataDir receives ndt-server's result files; it must exist and stay
	// writable until Close returns (ndt-server exits the process otherwise).
	DataDir string
	// TLS, when set, serves wss with this configuration (e.g. NewCA(...).ServerTLS).
	TLS *tls.Config
}

// Server is a running ndt7 server.
type Server struct {
	// Addr is "host:port", what a client takes as its server.
	Addr string
	// Scheme is "ws" or "wss".
	Scheme string
	// CA is the CA that signed a wss server's certificate (nil for ws).
	CA *CA
	// DataDir holds ndt-server's result files (ndt7/YYYY/MM/DD/*.json), the
	// server's own record of each subtest, client metadata included.
	DataDir string

	srv      *http.Server
	inflight sync.WaitGroup
	closed   chan struct{}
	once     sync.Once
	serveErr error
}

// Start serves ndt7 on 127.0.0.1 (a dynamic port) until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ndt7test: listen: %v", err)
	}
	cfg := Config{DataDir: dir}
	var ca *CA
	if o.TLS {
		ca, err = NewCA(dir, "127.0.0.1", "localhost")
		if err != nil {
			ln.Close()
			t.Fatalf("ndt7test: %v", err)
		}
		cfg.TLS = ca.ServerTLS
	}
	s, err := Serve(ln, cfg)
	if err != nil {
		ln.Close()
		t.Fatalf("ndt7test: %v", err)
	}
	s.CA = ca
	// Registered after TempDir, so it runs first: no subtest may still be
	// writing into the directory when it is removed.
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("ndt7test: close: %v", err)
		}
	})
	return s
}

// Serve runs ndt-server's ndt7 handler on ln, which must be a TCP listener
// (ndt-server reads TCP_INFO and BBR state from each accepted socket). It
// wires the handler the way ndt-server's own main does, minus access control
// and the tcp-info event socket: netx.NewListener around the TCP listener, a
// writable DataDir and a null event server. Serve takes ownership of ln.
func Serve(ln net.Listener, cfg Config) (*Server, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, fmt.Errorf("serve ndt7: listener is %T, want *net.TCPListener", ln)
	}
	if err := checkWritableDir(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("serve ndt7: data dir: %w", err)
	}
	addr := tl.Addr().(*net.TCPAddr)
	h := &handler.Handler{
		DataDir: cfg.DataDir,
		Events:  eventsocket.NullServer(),
	}
	s := &Server{Addr: addr.String(), Scheme: "ws", DataDir: cfg.DataDir, closed: make(chan struct{})}
	port := ":" + strconv.Itoa(addr.Port)
	if cfg.TLS != nil {
		h.SecurePort, s.Scheme = port, "wss"
	} else {
		h.InsecurePort = port
	}
	mux := http.NewServeMux()
	mux.Handle(spec.DownloadURLPath, s.track(h.Download))
	mux.Handle(spec.UploadURLPath, s.track(h.Upload))

	var l net.Listener = netx.NewListener(tl)
	if cfg.TLS != nil {
		tc := cfg.TLS.Clone()
		// WebSocket upgrades are HTTP/1.1 only.
		tc.NextProtos = []string{"http/1.1"}
		l = tls.NewListener(l, tc)
	}
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// ndt-server's main also bounds whole connections; a subtest lasts
		// at most spec.MaxRuntime.
		ReadTimeout:  time.Minute,
		WriteTimeout: time.Minute,
	}
	go func() {
		err := s.srv.Serve(l)
		if !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = err
		}
		close(s.closed)
	}()
	return s, nil
}

// track counts running subtests so Close can wait for them: WebSocket
// connections are hijacked, so http.Server.Shutdown does not.
func (s *Server) track(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Done()
		h(w, r)
	})
}

// Close stops accepting tests and waits for running subtests to end and
// write their result files (ndt-server bounds each by spec.MaxRuntime).
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*spec.MaxRuntime)
		defer cancel()
		err = s.srv.Shutdown(ctx)
		done := make(chan struct{})
		go func() { s.inflight.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = errors.Join(err, errors.New("ndt7 subtests still running after shutdown timeout"))
		}
		<-s.closed
		err = errors.Join(err, s.serveErr)
	})
	return err
}

func checkWritableDir(dir string) error {
	if dir == "" {
		return errors.New("empty path")
	}
	f, err := os.CreateTemp(dir, ".ndt7test-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// Subtests reads the result files the server wrote, one per finished
// subtest: the server's own record (UUID, client address, the query
// parameters as ClientMetadata, its measurements). A subtest's file appears
// when its handler returns, shortly after the client is done; Close first to
// be sure every file is there.
func (s *Server) Subtests() ([]data.NDT7Result, error) {
	var out []data.NDT7Result
	err := filepath.WalkDir(filepath.Join(s.DataDir, "ndt7"), func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == filepath.Join(s.DataDir, "ndt7") {
			return fs.SkipAll // nothing written yet
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var r data.NDT7Result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read ndt7 results: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartTime.Before(out[j].StartTime) })
	return out, nil
}
