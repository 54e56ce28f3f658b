package httpclient

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/tlstest"
	"github.com/radarpod/radarpod/internal/wallclock"
)

func TestNewSetsUserAgentUnlessPresent(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.UserAgent())
	}))
	defer srv.Close()
	c := New(Options{UserAgent: "RadarPodsAgent/1.0.0"})
	if _, err := c.Get(srv.URL); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("User-Agent", "explicit")
	if _, err := c.Do(req); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "RadarPodsAgent/1.0.0" || got[1] != "explicit" {
		t.Fatalf("user agents seen = %q", got)
	}
}

func TestReadLimited(t *testing.T) {
	tests := []struct {
		body    string
		max     int64
		wantErr bool
	}{
		{"hello", 5, false},
		{"hello", 10, false},
		{"hello!", 5, true},
		{"", 0, false},
	}
	for _, tt := range tests {
		b, err := ReadLimited(strings.NewReader(tt.body), tt.max)
		if tt.wantErr {
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("ReadLimited(%q, %d) err = %v, want ErrTooLarge", tt.body, tt.max, err)
			}
			continue
		}
		if err != nil || string(b) != tt.body {
			t.Errorf("ReadLimited(%q, %d) = %q, %v", tt.body, tt.max, b, err)
		}
	}
}

func TestLoadCertPoolRejectsGarbage(t *testing.T) {
	if _, err := LoadCertPool([]byte("not pem")); err == nil {
		t.Fatal("LoadCertPool accepted garbage")
	}
}

// A pod that booted at 1970 checks the pods service's certificate at its
// best estimate of the time, never before the build: it reaches the
// service, and the service's Date then tells it the time.
func TestClockChecksCertificatesAtTheEstimateAndLearnsFromDates(t *testing.T) {
	ca, err := tlstest.NewCA("httpclient test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(tlstest.LoopbackHosts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable) // a Date comes with any status
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	defer srv.Close()

	at1970 := func() time.Time { return time.Unix(60, 0) }
	unsynced := func() (wallclock.KernelState, error) { return wallclock.KernelUnsynced, nil }
	get := func(clock *wallclock.Clock) error {
		c := New(Options{RootCAs: ca.Pool, Clock: clock, Timeout: 10 * time.Second})
		resp, err := c.Get(srv.URL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}

	// Unstamped build, nothing learned: the certificate is not yet valid in 1970.
	noBound := wallclock.New(wallclock.Options{Now: at1970, Kernel: unsynced, BuildTime: time.Unix(1, 0)})
	if err := get(noBound); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("certificate checked at 1970 accepted: %v", err)
	}
	// Built a minute ago: checked at the build time, reached.
	built := wallclock.New(wallclock.Options{Now: at1970, Kernel: unsynced, BuildTime: time.Now().Add(-time.Minute)})
	if r := built.Read(); r.Synced {
		t.Fatal("synced before any answer")
	}
	if err := get(built); err != nil {
		t.Fatalf("not reached at the build time: %v", err)
	}
	r := built.Read()
	if !r.Synced || r.Source != wallclock.SourceServiceDate || time.Since(r.Estimate).Abs() > 5*time.Second {
		t.Fatalf("after the service answered: synced %v source %q estimate %s", r.Synced, r.Source, r.Estimate)
	}
	// What was learned makes the clock with no bound reach it too.
	noBound.Observe("service.test", time.Now(), true)
	if err := get(noBound); err != nil {
		t.Fatalf("not reached at the learned time: %v", err)
	}
}

// ObserveDates reports Dates through a client built elsewhere.
func TestObserveDates(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	clock := wallclock.New(wallclock.Options{Now: func() time.Time { return time.Unix(60, 0) },
		Kernel: func() (wallclock.KernelState, error) { return wallclock.KernelUnsynced, nil }})
	c := ObserveDates(srv.Client(), clock)
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := clock.Read(); !r.Synced || time.Since(r.Estimate).Abs() > 5*time.Second {
		t.Fatalf("Date of a 404 not learned: %+v", r)
	}
	if _, ok := srv.Client().Transport.(dateObserver); ok {
		t.Fatal("the original client was changed")
	}
}
