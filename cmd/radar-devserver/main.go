//go:build linux && cgo

// Command radar-devserver is a local development pods service: the strict
// protocol double (radartest) on HTTP/ActionCable, the real M-Lab ndt-server
// in-process for NDT7 tests, and an HTTPS endpoint serving a release CRL, so
// a pod (or the whole compose stack) runs end to end on one machine with no
// internet. A small control API announces updates and requests tests. It is
// a development tool (cgo: the ndt-server) and never shipped.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/radarpod/radarpod/internal/atomicfile"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/httpclient"
	"github.com/radarpod/radarpod/internal/ndt7test"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/tlstest"
)

// Endpoints is what the devserver prints (and writes to --state-file) once
// it is ready: where each part listens.
type Endpoints struct {
	ServerURL string `json:"server_url"` // RADAR_SERVER_URL
	NDT7      string `json:"ndt7"`       // RADAR_NDT7_SERVER (ws)
	CRLURL    string `json:"crl_url,omitempty"`
	TLSCAFile string `json:"tls_ca_file,omitempty"` // trust this for CRLURL (SSL_CERT_FILE)
	Control   string `json:"control"`
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("radar-devserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Loopback by default: nothing outside this machine should reach a
	// development service. A pod on a compose bridge network has a loopback
	// of its own; give it an address of this host it reaches (the Docker
	// bridge's, e.g. 172.17.0.1), or run the pod with host networking.
	listen := fs.String("listen", "127.0.0.1:3000", "pods service address (HTTP and ActionCable); a pod on a Docker bridge network needs the bridge's address, e.g. 172.17.0.1:3000")
	ndt7Addr := fs.String("ndt7", "127.0.0.1:0", "ndt7 server address (ws); as --listen")
	control := fs.String("control", "127.0.0.1:0", "control API address")
	crlFile := fs.String("crl-file", "", "serve this PEM CRL over HTTPS at /rootCRL.crl.pem (read at each request)")
	crlListen := fs.String("crl-listen", "127.0.0.1:0", "CRL server address")
	caOut := fs.String("tls-ca-out", "", "write the CA of the CRL server's certificate here (default: beside --state-file)")
	stateFile := fs.String("state-file", "", "write the endpoints as JSON here once ready")
	ping := fs.Duration("ping", 3*time.Second, "ActionCable ping interval")
	dataDir := fs.String("data-dir", "", "directory for ndt-server's result files (default: a temporary one)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	for _, addr := range []string{*listen, *ndt7Addr} {
		if allAddresses(addr) {
			// The URLs handed to pods (and the service's redirects) name
			// 127.0.0.1 then, which only a pod on the host's network reaches.
			log.Warn("listening on every address, but the URLs given to pods name 127.0.0.1: a pod on a bridge network needs --listen/--ndt7 with an address of this host it reaches (e.g. the Docker bridge's)", "addr", addr)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := serve(ctx, options{*listen, *ndt7Addr, *control, *crlFile, *crlListen, *caOut, *stateFile, *ping, *dataDir}, stdout, log); err != nil {
		fmt.Fprintln(stderr, "radar-devserver:", err)
		return 1
	}
	return 0
}

// allAddresses reports whether addr listens on every address (":3000",
// "0.0.0.0:3000", "[::]:3000").
func allAddresses(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

type options struct {
	listen, ndt7, control, crlFile, crlListen, caOut, stateFile string
	ping                                                        time.Duration
	dataDir                                                     string
}

func serve(ctx context.Context, o options, stdout io.Writer, log *slog.Logger) error {
	svc, err := radartest.New(radartest.Options{Addr: o.listen, PingInterval: o.ping, Logger: log, AllowViolations: true})
	if err != nil {
		return err
	}
	defer svc.Close()

	if o.dataDir == "" {
		d, err := os.MkdirTemp("", "radar-devserver-ndt7-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dataDir = d
	}
	ln, err := net.Listen("tcp", o.ndt7)
	if err != nil {
		return fmt.Errorf("ndt7 listen: %w", err)
	}
	ndt, err := ndt7test.Serve(ln, ndt7test.Config{DataDir: o.dataDir})
	if err != nil {
		return err
	}
	defer ndt.Close()

	ep := Endpoints{ServerURL: svc.URL, NDT7: ndt.Addr}
	if o.crlFile != "" {
		url, caFile, closeCRL, err := serveCRL(o)
		if err != nil {
			return err
		}
		defer closeCRL()
		ep.CRLURL, ep.TLSCAFile = url, caFile
	}
	ctl, err := net.Listen("tcp", o.control)
	if err != nil {
		return fmt.Errorf("control listen: %w", err)
	}
	ep.Control = "http://" + ctl.Addr().String()
	ctlSrv := &http.Server{Handler: controlHandler(svc), ReadHeaderTimeout: 5 * time.Second}
	go ctlSrv.Serve(ctl)
	defer ctlSrv.Close()

	b, _ := json.Marshal(ep)
	fmt.Fprintln(stdout, string(b))
	if o.stateFile != "" {
		if err := atomicfile.Write(o.stateFile, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	log.Info("radar-devserver ready", "server_url", ep.ServerURL, "ndt7", ep.NDT7, "crl_url", ep.CRLURL, "control", ep.Control)
	if config.NeedsInsecureServerOptIn(ep.ServerURL) {
		// The pods service here is plain HTTP; off loopback a pod sends its
		// secret over it only when told that this is on purpose.
		log.Warn("a pod pointed at this service needs RADAR_ALLOW_INSECURE_SERVER=true as well: it refuses plain http to a host that is not loopback",
			"server_url", ep.ServerURL)
	}
	<-ctx.Done()
	return nil
}

// serveCRL serves the CRL file over HTTPS with a certificate from a fresh
// CA, written where the updater can be told to trust it.
func serveCRL(o options) (url, caFile string, closeFn func(), err error) {
	ca, err := tlstest.NewCA("radar-devserver CRL host CA")
	if err != nil {
		return "", "", nil, err
	}
	ln, err := net.Listen("tcp", o.crlListen)
	if err != nil {
		return "", "", nil, fmt.Errorf("CRL listen: %w", err)
	}
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	cert, err := ca.Issue(append([]string{host}, tlstest.LoopbackHosts...)...)
	if err != nil {
		ln.Close()
		return "", "", nil, err
	}
	caFile = o.caOut
	if caFile == "" {
		dir := os.TempDir()
		if o.stateFile != "" {
			dir = filepath.Dir(o.stateFile)
		}
		caFile = filepath.Join(dir, "devserver-ca.pem")
	}
	if err := atomicfile.Write(caFile, ca.PEM, 0o644); err != nil {
		ln.Close()
		return "", "", nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/rootCRL.crl.pem", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(o.crlFile)
		if err != nil {
			http.Error(w, "CRL unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(b)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go srv.ServeTLS(ln, "", "")
	return "https://" + ln.Addr().String() + "/rootCRL.crl.pem", caFile, func() { srv.Close() }, nil
}

// controlHandler drives the double: what the real service's operators and
// its scheduler would do.
func controlHandler(svc *radartest.Server) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, stateOf(svc))
	})
	mux.HandleFunc("POST /run-test", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Interfaces []string `json:"interfaces"`
		}
		if err := readJSON(r, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// Pending too, so a pod that is reconnecting gets it at sync.
		svc.SetPendingTest(true)
		writeJSON(w, map[string]int{"sent_to": svc.SendRunTest(req.Interfaces)})
	})
	mux.HandleFunc("POST /announce", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Version string `json:"version"`
		}
		if err := readJSON(r, &req); err != nil || req.Version == "" {
			http.Error(w, "body: {\"version\": \"1.2.3\"}", http.StatusBadRequest)
			return
		}
		url := "/client_versions/" + req.Version + "/distributions/linux-" + runtime.GOARCH + "/download?signed=true"
		svc.SetPendingUpdate(req.Version, url)
		writeJSON(w, map[string]int{"sent_to": svc.SendVersionChanged(req.Version, url)})
	})
	return mux
}

// State is the control API's view of the double.
type State struct {
	Registrations int           `json:"registrations"`
	Subscribed    int           `json:"subscribed"`
	Connections   []Connection  `json:"connections"`
	Syncs         []string      `json:"sync_versions"`
	Pongs         int           `json:"pongs"`
	StatusCalls   int           `json:"status_calls"`
	Measurements  []Measurement `json:"measurements"`
	Violations    []string      `json:"violations"`
}

// Connection is one channel upgrade.
type Connection struct {
	ServiceStarted string `json:"service_started"`
	Status         int    `json:"status"`
}

// Measurement is a stored upload as the service parsed it.
type Measurement struct {
	Style        string  `json:"style"`
	Interface    string  `json:"interface"`
	DownloadMbps float64 `json:"download_mbps"`
	UploadMbps   float64 `json:"upload_mbps"`
	LatencyMs    float64 `json:"latency_ms"`
	ParseError   string  `json:"parse_error,omitempty"`
}

func stateOf(svc *radartest.Server) State {
	st := State{Registrations: len(svc.Registrations()), Subscribed: svc.Subscribed(),
		Pongs: len(svc.Pongs()), StatusCalls: len(svc.StatusCalls())}
	for _, c := range svc.Connections() {
		st.Connections = append(st.Connections, Connection{ServiceStarted: c.ServiceStarted, Status: c.Status})
	}
	for _, s := range svc.Syncs() {
		st.Syncs = append(st.Syncs, s.Payload.Version)
	}
	for _, m := range svc.Measurements() {
		dm := Measurement{Style: m.Style, Interface: m.Interface}
		switch {
		case m.ParseErr != nil:
			dm.ParseError = m.ParseErr.Error()
		case m.NDT7 != nil:
			dm.DownloadMbps, dm.UploadMbps, dm.LatencyMs = m.NDT7.Download, m.NDT7.Upload, m.NDT7.MinRTT
		case m.Ookla != nil:
			dm.DownloadMbps, dm.UploadMbps, dm.LatencyMs = m.Ookla.Download, m.Ookla.Upload, m.Ookla.Latency
		}
		st.Measurements = append(st.Measurements, dm)
	}
	for _, v := range svc.Violations() {
		st.Violations = append(st.Violations, v.String())
	}
	return st
}

func readJSON(r *http.Request, v any) error {
	b, err := httpclient.ReadLimited(r.Body, 64<<10)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errors.New("body is not JSON")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
