// Package ndt7 owns the NDT7 speed test: choosing ws or wss, running M-Lab's
// ndt7 client (download, then upload) against a pinned server or one found
// through M-Lab locate, bound to one interface's address when asked, and
// turning the measurements into the NDJSON file the pods service parses,
// with the summary computed exactly as M-Lab's own CLI computes it.
package ndt7

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/gorilla/websocket"
	"github.com/m-lab/locate/api/locate"
	mlab "github.com/m-lab/ndt7-client-go"
	"github.com/m-lab/ndt7-client-go/spec"

	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/httpclient"
	"github.com/radarpod/radarpod/internal/speedtest"
)

// Name is the runner's name in RADAR_TESTS, metrics and results.
const Name = "ndt7"

// DefaultLocateURL is M-Lab's public locate v2 "nearest" endpoint, the one
// ndt7-client uses without a token.
const DefaultLocateURL = "https://locate.measurementlab.net/v2/nearest/"

const (
	defaultClientName = "radar-pod"
	// locateTimeout bounds the locate request; the run's context bounds it too.
	locateTimeout = 30 * time.Second
)

// Options configure a Runner. The zero value runs the standard test against
// a server found by M-Lab locate over wss.
type Options struct {
	// Server is the "host:port" of a fixed ndt7 server; empty uses locate.
	Server string
	// Scheme is "ws" or "wss" (see ChooseScheme); empty means wss.
	Scheme string
	// RootCAs verifies wss servers; nil uses the system roots.
	RootCAs *x509.CertPool
	// ClientName and ClientVersion identify the pod to locate and the server
	// (client_name / client_version); defaults radar-pod and buildinfo.Version.
	ClientName, ClientVersion string
	// Logger receives the scheme, server and summary of every run.
	Logger *slog.Logger
	// LocateURL replaces DefaultLocateURL (tests, private deployments).
	LocateURL string
	// Params are extra query parameters of both subtest URLs, e.g.
	// early_exit=250, which ndt-server honours by ending the download once
	// 250 MB are acknowledged. Empty in production: the standard test.
	Params url.Values
	// SubtestDuration ends each subtest from the client side after this long
	// and counts it as complete. 0 (production) keeps the protocol's own
	// lengths: the server ends the download, the client the upload, at 10 s.
	SubtestDuration time.Duration
}

// Runner runs NDT7 tests. It is safe for sequential use; the agent runs one
// test at a time.
type Runner struct {
	o         Options
	scheme    string
	locateURL *url.URL
	configErr error
	log       *slog.Logger
}

// New returns a runner for o. A bad option surfaces as an internal-class
// error from Run, where the agent records failures.
func New(o Options) *Runner {
	r := &Runner{o: o, scheme: o.Scheme, log: o.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.o.ClientName == "" {
		r.o.ClientName = defaultClientName
	}
	if r.o.ClientVersion == "" {
		r.o.ClientVersion = buildinfo.Version
	}
	switch r.scheme {
	case "":
		r.scheme = "wss"
	case "ws", "wss":
	default:
		r.configErr = fmt.Errorf("unknown scheme %q (want ws or wss)", o.Scheme)
	}
	if o.Server == "" {
		raw := o.LocateURL
		if raw == "" {
			raw = DefaultLocateURL
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			r.configErr = fmt.Errorf("bad locate URL %q", raw)
		}
		r.locateURL = u
	}
	return r
}

// Name returns "ndt7".
func (r *Runner) Name() string { return Name }

// Run measures download then upload and returns the NDJSON result. On error
// the Result may still hold a partial Raw and Summary (e.g. the download
// completed and the upload did not); Raw is nil when nothing was measured.
func (r *Runner) Run(ctx context.Context, target speedtest.Target) (speedtest.Result, error) {
	res := speedtest.Result{
		Runner:    Name,
		Style:     speedtest.StyleNDT7,
		Interface: target.Interface,
		StartedAt: time.Now(),
	}
	if r.configErr != nil {
		res.FinishedAt = time.Now()
		return res, &speedtest.Error{Runner: Name, Class: speedtest.ClassInternal, Err: r.configErr}
	}
	server := r.o.Server
	if server == "" {
		server = "locate"
	}
	log := r.log.With("runner", Name, "interface", target.Interface, "scheme", r.scheme, "server", server)
	if target.LocalAddr != nil {
		log = log.With("local_addr", target.LocalAddr.String())
	}
	log.Info("ndt7 test starting")

	client := r.client(target)
	rec := newRecorder()
	if r.o.Server == "" {
		speedtest.ReportProgress(ctx, speedtest.Progress{Runner: Name, Interface: target.Interface, Phase: speedtest.PhaseLocate})
	}
	dlStarted, err := r.subtest(ctx, client, target, spec.TestDownload, rec)
	ulStarted := false
	// Like ndt7-client, a download that started and went wrong is still
	// followed by the upload: half a result is worth keeping. A download that
	// could not even start (locate, dial, handshake) would fail the same way.
	// A server that flooded the download with measurements gets no upload.
	if dlStarted && ctx.Err() == nil && !rec.full() {
		var ulErr error
		ulStarted, ulErr = r.subtest(ctx, client, target, spec.TestUpload, rec)
		if err == nil {
			err = ulErr
		}
	}
	results := client.Results()
	sum, haveDown, haveUp := summarize(results)
	if err == nil {
		switch {
		case dlStarted && !haveDown:
			err = r.fail(speedtest.ClassNetwork, errors.New("download ended before the client measured anything"))
		case ulStarted && !haveUp:
			err = r.fail(speedtest.ClassNetwork, errors.New("upload ended before the server reported a measurement"))
		}
	}
	// A flooded record is cut short and its figures come from a server
	// that misbehaved: nothing of it is kept.
	if rec.lines > 0 && !rec.full() {
		if serr := rec.summary(sum); serr != nil && err == nil {
			err = r.fail(speedtest.ClassInternal, fmt.Errorf("encode summary: %w", serr))
		}
		res.Raw = rec.buf.Bytes()
		res.Summary = speedtest.Summary{
			DownloadMbps: sum.Download.Value,
			UploadMbps:   sum.Upload.Value,
			LatencyMs:    sum.MinRTT.Value,
		}
	}
	// Counted whatever the outcome: a failed test's traffic is spent too.
	res.Summary.BytesSent, res.Summary.BytesReceived = transferred(results)
	res.FinishedAt = time.Now()
	res.Server = client.FQDN

	attrs := []any{
		"fqdn", client.FQDN,
		"download_mbps", res.Summary.DownloadMbps,
		"upload_mbps", res.Summary.UploadMbps,
		"min_rtt_ms", res.Summary.LatencyMs,
		"download_uuid", uuidOf(results, spec.TestDownload),
		"upload_uuid", uuidOf(results, spec.TestUpload),
		"measurements", rec.lines,
		"bytes", len(res.Raw),
		"bytes_sent", res.Summary.BytesSent,
		"bytes_received", res.Summary.BytesReceived,
		"duration", res.FinishedAt.Sub(res.StartedAt).Round(time.Millisecond).String(),
	}
	if err != nil {
		log.Warn("ndt7 test failed", append(attrs, "class", string(speedtest.ClassOf(err)), "error", err.Error())...)
		return res, err
	}
	log.Info("ndt7 test finished", attrs...)
	return res, nil
}

// client builds the M-Lab client for one run: fresh per run because it
// caches locate targets and results.
func (r *Runner) client(target speedtest.Target) *mlab.Client {
	c := mlab.NewClient(r.o.ClientName, r.o.ClientVersion)
	c.Scheme = r.scheme
	// Measurement traffic goes direct (a proxy would be what is measured),
	// from the interface under test.
	c.Dialer.NetDialContext = httpclient.Dialer(target.LocalAddr).DialContext
	c.Dialer.TLSClientConfig = &tls.Config{RootCAs: r.o.RootCAs, MinVersion: tls.VersionTLS12}
	if r.o.Server == "" {
		ua := mlab.MakeUserAgent(r.o.ClientName, r.o.ClientVersion)
		loc := locate.NewClient(ua)
		base := *r.locateURL
		loc.BaseURL = &base
		// The locate request leaves from the interface under test too, so
		// M-Lab picks a server near that uplink; it honours HTTPS_PROXY.
		loc.HTTPClient = httpclient.New(httpclient.Options{
			UserAgent: ua,
			Timeout:   locateTimeout,
			LocalAddr: target.LocalAddr,
		})
		c.Locate = &locator{next: loc, params: r.o.Params}
	}
	return c
}

// subtest runs one direction and streams its measurements into rec. started
// reports whether the server accepted the test (measurements may follow).
func (r *Runner) subtest(ctx context.Context, c *mlab.Client, target speedtest.Target, test spec.TestKind, rec *recorder) (started bool, err error) {
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	if r.o.SubtestDuration > 0 {
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(sctx, r.o.SubtestDuration)
		defer cancel()
	}
	start, path := c.StartDownload, "/ndt/v7/download"
	if test == spec.TestUpload {
		start, path = c.StartUpload, "/ndt/v7/upload"
	}
	if r.o.Server != "" {
		// ServiceURL is the library's way to carry query parameters; without
		// any it is the same URL that Client.Server would build.
		c.ServiceURL = &url.URL{Scheme: r.scheme, Host: r.o.Server, Path: path, RawQuery: r.o.Params.Encode()}
	}
	ch, err := start(sctx)
	if err != nil {
		return false, r.classifyStart(ctx, test, err)
	}
	var werr error
	live := newProgress(ctx, target, test, c.FQDN)
	// Drain even after a write error: the library's goroutines block until
	// the channel is consumed.
	for m := range ch {
		live.measurement(&m)
		if werr == nil {
			if werr = rec.measurement(&m); errors.Is(werr, errRecordFull) {
				// Hang up on the flood; the library then closes ch.
				stop()
			}
		}
	}
	if e := speedtest.ContextError(ctx, Name); e != nil {
		e.Err = fmt.Errorf("%s: %w", test, e.Err)
		return true, e
	}
	if errors.Is(werr, errRecordFull) {
		return true, r.fail(speedtest.ClassServer, fmt.Errorf("%s: %w", test, werr))
	}
	if werr != nil {
		return true, r.fail(speedtest.ClassInternal, fmt.Errorf("%s: encode measurement: %w", test, werr))
	}
	return true, nil
}

func (r *Runner) classifyStart(ctx context.Context, test spec.TestKind, err error) error {
	if e := speedtest.ContextError(ctx, Name); e != nil {
		e.Err = fmt.Errorf("%s: %w (%v)", test, e.Err, err)
		return e
	}
	wrapped := fmt.Errorf("%s: %w", test, err)
	var le *locateError
	switch {
	case errors.As(err, &le):
		return r.fail(speedtest.ClassLocate, wrapped)
	case errors.Is(err, mlab.ErrNoTargets):
		return r.fail(speedtest.ClassNetwork, fmt.Errorf("%s: no server from locate could be reached: %w", test, err))
	case errors.Is(err, mlab.ErrServiceUnsupported):
		return r.fail(speedtest.ClassInternal, wrapped)
	case errors.Is(err, websocket.ErrBadHandshake):
		// The server answered HTTP but refused the upgrade.
		return r.fail(speedtest.ClassServer, wrapped)
	case errors.Is(err, context.DeadlineExceeded):
		return r.fail(speedtest.ClassTimeout, wrapped)
	default:
		return r.fail(speedtest.ClassNetwork, wrapped)
	}
}

func (r *Runner) fail(class speedtest.Class, err error) *speedtest.Error {
	return &speedtest.Error{Runner: Name, Class: class, Err: err}
}

func uuidOf(results map[spec.TestKind]*mlab.LatestMeasurements, test spec.TestKind) string {
	if lm := results[test]; lm != nil && lm.ConnectionInfo != nil {
		return lm.ConnectionInfo.UUID
	}
	return ""
}
