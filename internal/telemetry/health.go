package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/radarpod/radarpod/internal/httpclient"
)

// Health answers "is this process doing its job": its main loop has beaten
// recently and its data directory accepts writes (a full or read-only disk
// means results would be lost).
type Health struct {
	DataDir string
	// MaxSilence is how long the main loop may go without Beat.
	MaxSilence time.Duration

	last atomic.Int64
}

// Beat records that the main loop is alive.
func (h *Health) Beat() { h.last.Store(time.Now().UnixNano()) }

// Check returns nil when healthy and otherwise says why not.
func (h *Health) Check() error {
	last := h.last.Load()
	if last == 0 {
		return errors.New("main loop has not started")
	}
	if since := time.Since(time.Unix(0, last)); since > h.MaxSilence {
		return fmt.Errorf("main loop silent for %s", since.Round(time.Second))
	}
	if h.DataDir != "" {
		f, err := os.CreateTemp(h.DataDir, ".health-*")
		if err != nil {
			return fmt.Errorf("data dir not writable: %w", err)
		}
		name := f.Name()
		_, werr := f.Write([]byte("ok"))
		f.Close()
		os.Remove(name)
		if werr != nil {
			return fmt.Errorf("data dir not writable: %w", werr)
		}
	}
	return nil
}

// Handler serves /healthz and /metrics.
func Handler(m *Metrics, h *Health) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := h.Check(); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/metrics", m)
	return mux
}

// Serve listens on addr until ctx is done. An empty addr disables the endpoint.
func Serve(ctx context.Context, addr string, handler http.Handler, log *slog.Logger) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (RADAR_LISTEN_ADDR): %w", addr, err)
	}
	srv := healthServer(handler)
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	log.Info("health and metrics endpoint listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("health endpoint: %w", err)
	}
	return nil
}

// healthLimits bound what one client of the health endpoint can hold: a
// request (its headers, then all of it) must arrive in seconds, an answer
// be taken within half a minute, and an idle keep-alive connection is
// closed after a minute. The endpoint listens on loopback by default, but
// RADAR_LISTEN_ADDR may open it wider, and without limits a client that
// trickles bytes or just keeps connections open holds goroutines and
// descriptors of a small pod for ever. /healthz and /metrics need no
// header beyond a few hundred bytes.
var healthLimits = struct {
	readHeader, read, write, idle time.Duration
	maxHeaderBytes                int
}{
	readHeader:     5 * time.Second,
	read:           10 * time.Second,
	write:          30 * time.Second,
	idle:           time.Minute,
	maxHeaderBytes: 8 << 10,
}

// healthServer is the health endpoint's server, with healthLimits.
func healthServer(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: healthLimits.readHeader,
		ReadTimeout:       healthLimits.read,
		WriteTimeout:      healthLimits.write,
		IdleTimeout:       healthLimits.idle,
		MaxHeaderBytes:    healthLimits.maxHeaderBytes,
	}
}

// CheckHealth asks a running agent's /healthz; it backs `radar-agent
// healthcheck`, which Docker runs inside a scratch image with no curl.
func CheckHealth(ctx context.Context, listenAddr string) error {
	url, err := LocalURL(listenAddr, "/healthz")
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := httpclient.New(httpclient.Options{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := httpclient.ReadLimited(resp.Body, 4096)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s: %s", resp.Status, string(body))
	}
	return nil
}

// LocalURL is the URL of path on the agent's local endpoint as a client
// on the same machine (or in the same container) reaches it: an
// unspecified listen host (":9100", "0.0.0.0:9100") is asked on 127.0.0.1.
func LocalURL(listenAddr, path string) (string, error) {
	host, port, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return "", fmt.Errorf("RADAR_LISTEN_ADDR %q: %w", listenAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}

// HealthFile is where a process without a listening socket (the updater)
// proves liveness: it touches the file, and its healthcheck reads the age.
func HealthFile(dataDir, component string) string {
	return filepath.Join(dataDir, "."+component+".alive")
}
