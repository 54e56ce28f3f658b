package wallclock_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/tlstest"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// fakeClocks are the three clocks a Clock reads, under the test's control.
type fakeClocks struct {
	mu     sync.Mutex
	wall   time.Time
	boot   time.Duration
	kernel wallclock.KernelState
}

func (f *fakeClocks) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wall
}

func (f *fakeClocks) bootTime() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.boot
}

func (f *fakeClocks) readKernel() (wallclock.KernelState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.kernel == wallclock.KernelUnknown {
		return f.kernel, errors.New("adjtimex: operation not permitted")
	}
	return f.kernel, nil
}

// advance moves every clock by d, as time passing does.
func (f *fakeClocks) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall = f.wall.Add(d)
	f.boot += d
}

// set steps the wall clock (NTP syncing) and the kernel's status.
func (f *fakeClocks) set(wall time.Time, k wallclock.KernelState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall, f.kernel = wall, k
}

func (f *fakeClocks) clock(o wallclock.Options) *wallclock.Clock {
	o.Now, o.Kernel, o.Boot, o.BootID = f.now, f.readKernel, f.bootTime, "boot-1"
	return wallclock.New(o)
}

var (
	// real is "now" in these tests; the build is a month older.
	real  = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	build = real.Add(-30 * 24 * time.Hour)
)

// The four clocks a Pi boots with, each with the kernel's two answers and
// with or without a server's Date (the real time).
func TestReadAndCheck(t *testing.T) {
	type date int
	const (
		noDate date = iota
		dateTLS
		datePlain
	)
	cases := []struct {
		name      string
		wall      time.Time
		kernel    wallclock.KernelState
		date      date
		authOnly  bool
		trusted   bool   // Check passes
		against   string // what an untrusted clock was compared with
		synced    bool   // Read's estimate is a real date
		source    wallclock.Source
		estimated time.Time // the estimate, when synced
	}{
		{name: "1970, no Date", wall: time.Unix(5, 0), kernel: wallclock.KernelUnsynced,
			against: "this build's time", source: wallclock.SourceUnsynced},
		{name: "1970, Date over TLS", wall: time.Unix(5, 0), kernel: wallclock.KernelUnsynced, date: dateTLS,
			against: "this build's time", synced: true, source: wallclock.SourceServiceDate, estimated: real},
		{name: "1970, kernel claims synced", wall: time.Unix(5, 0), kernel: wallclock.KernelSynced,
			against: "this build's time", source: wallclock.SourceUnsynced},
		{name: "build time - 1 day, no Date", wall: build.Add(-24 * time.Hour), kernel: wallclock.KernelUnsynced,
			against: "this build's time", source: wallclock.SourceUnsynced},
		{name: "build time - 1 day, Date over plain HTTP", wall: build.Add(-24 * time.Hour), kernel: wallclock.KernelUnsynced, date: datePlain,
			against: "this build's time", synced: true, source: wallclock.SourceServiceDate, estimated: real},
		{name: "3 years ahead, kernel unsynced, no Date", wall: real.AddDate(3, 0, 0), kernel: wallclock.KernelUnsynced,
			against: "the kernel's synchronization status", source: wallclock.SourceUnsynced},
		{name: "3 years ahead, Date over TLS", wall: real.AddDate(3, 0, 0), kernel: wallclock.KernelUnsynced, date: dateTLS,
			against: "the Date of service.test", synced: true, source: wallclock.SourceServiceDate, estimated: real},
		{name: "3 years ahead, kernel claims synced, Date disagrees", wall: real.AddDate(3, 0, 0), kernel: wallclock.KernelSynced, date: dateTLS,
			against: "the Date of service.test", synced: true, source: wallclock.SourceServiceDate, estimated: real},
		{name: "3 years ahead, plain Date, only TLS counts", wall: real.AddDate(3, 0, 0), kernel: wallclock.KernelUnsynced, date: datePlain, authOnly: true,
			against: "the Date of service.test", source: wallclock.SourceUnsynced},
		{name: "synced by the kernel", wall: real, kernel: wallclock.KernelSynced,
			trusted: true, synced: true, source: wallclock.SourceKernel, estimated: real},
		{name: "synced by the kernel, Date agrees", wall: real.Add(2 * time.Second), kernel: wallclock.KernelSynced, date: dateTLS,
			trusted: true, synced: true, source: wallclock.SourceKernel, estimated: real.Add(2 * time.Second)},
		{name: "right, kernel unsynced, Date over TLS agrees", wall: real.Add(time.Minute), kernel: wallclock.KernelUnsynced, date: dateTLS,
			trusted: true, synced: true, source: wallclock.SourceServiceDate, estimated: real.Add(time.Minute)},
		{name: "right, kernel unsynced, no Date", wall: real, kernel: wallclock.KernelUnsynced,
			against: "the kernel's synchronization status", source: wallclock.SourceUnsynced},
		{name: "right, kernel status unreadable, no Date", wall: real, kernel: wallclock.KernelUnknown,
			against: "the kernel's synchronization status", source: wallclock.SourceUnsynced},
		{name: "right, kernel unsynced, plain Date agrees, only TLS counts", wall: real, kernel: wallclock.KernelUnsynced, date: datePlain, authOnly: true,
			against: "the kernel's synchronization status", source: wallclock.SourceUnsynced},
		{name: "right, kernel unsynced, plain Date agrees", wall: real, kernel: wallclock.KernelUnsynced, date: datePlain,
			trusted: true, synced: true, source: wallclock.SourceServiceDate, estimated: real},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeClocks{wall: tc.wall, boot: time.Hour, kernel: tc.kernel}
			c := f.clock(wallclock.Options{BuildTime: build, AuthenticatedDatesOnly: tc.authOnly})
			if tc.date != noDate {
				c.Observe("service.test", real, tc.date == dateTLS)
			}
			// The Date is carried forward on the boot clock.
			f.advance(10 * time.Minute)
			later := 10 * time.Minute
			r := c.Read()
			err := c.Check()
			if tc.trusted != (err == nil) || tc.trusted != (r.WallErr == nil) {
				t.Fatalf("Check = %v, want trusted=%v", err, tc.trusted)
			}
			if !tc.trusted {
				var ue *wallclock.UntrustedError
				if !errors.Is(err, wallclock.ErrUntrusted) || !errors.As(err, &ue) {
					t.Fatalf("Check = %v, want an *UntrustedError", err)
				}
				if ue.Against != tc.against || !ue.Read.Equal(tc.wall.Add(later)) {
					t.Errorf("compared %s with %q, want %s with %q", ue.Read, ue.Against, tc.wall.Add(later), tc.against)
				}
				if msg := err.Error(); !strings.Contains(msg, "reads "+tc.wall.Add(later).UTC().Format(time.RFC3339)) {
					t.Errorf("message does not say what the clock read: %s", msg)
				}
			}
			if r.Synced != tc.synced || r.Source != tc.source {
				t.Fatalf("Read = synced %v source %q, want %v %q (%v)", r.Synced, r.Source, tc.synced, tc.source, r.WallErr)
			}
			at, s := r.Stamp()
			if tc.synced {
				if want := tc.estimated.Add(later); !r.Estimate.Equal(want) || !at.Equal(want) {
					t.Errorf("estimate %s, stamped %s, want %s", r.Estimate, at, want)
				}
				if s.BootID != "" {
					t.Errorf("a synced stamp carries boot data: %+v", s)
				}
			} else if !at.IsZero() || s.Synced || s.BootID != "boot-1" || s.Boot != time.Hour+later {
				t.Errorf("unsynced stamp: %s %+v", at, s)
			}
		})
	}
}

// A result taken at 1970 is dated once the time is known in the same
// boot, and never after a reboot.
func TestCorrect(t *testing.T) {
	f := &fakeClocks{wall: time.Unix(30, 0), boot: 30 * time.Second, kernel: wallclock.KernelUnsynced}
	c := f.clock(wallclock.Options{BuildTime: build})
	_, taken := c.Read().Stamp()
	if _, _, ok := c.Correct(taken); ok {
		t.Fatal("corrected while the time is still unknown")
	}
	f.advance(90 * time.Second)
	// NTP steps the clock to the real time two minutes after the result.
	f.set(real, wallclock.KernelSynced)
	at, s, ok := c.Correct(taken)
	if want := real.Add(-90 * time.Second); !ok || !at.Equal(want) || !s.Synced || s.Source != wallclock.SourceBootClock {
		t.Fatalf("Correct = %s %+v %v, want %s from the boot clock", at, s, ok, want)
	}
	if _, _, ok := c.Correct(s); ok {
		t.Error("a corrected stamp corrected again")
	}
	other := taken
	other.BootID = "boot-0"
	if _, _, ok := c.Correct(other); ok || c.Correctable(other) {
		t.Error("a stamp of another boot was dated")
	}
	// Learned from a Date instead of the kernel: the same.
	f2 := &fakeClocks{wall: time.Unix(30, 0), boot: 30 * time.Second, kernel: wallclock.KernelUnsynced}
	c2 := f2.clock(wallclock.Options{BuildTime: build})
	_, taken = c2.Read().Stamp()
	f2.advance(time.Minute)
	c2.Observe("service.test", real, true)
	if at, _, ok := c2.Correct(taken); !ok || !at.Equal(real.Add(-time.Minute)) {
		t.Fatalf("Correct after a Date = %s %v", at, ok)
	}
}

// TLSTime is the estimate, never before the build.
func TestTLSTime(t *testing.T) {
	f := &fakeClocks{wall: time.Unix(5, 0), boot: time.Minute, kernel: wallclock.KernelUnsynced}
	c := f.clock(wallclock.Options{BuildTime: build})
	if got := c.TLSTime(); !got.Equal(build) {
		t.Errorf("TLSTime at 1970 = %s, want the build time %s", got, build)
	}
	c.Observe("service.test", real, true)
	if got := c.TLSTime(); !got.Equal(real) {
		t.Errorf("TLSTime after a Date = %s, want %s", got, real)
	}
}

// Dates come from real responses, with a cache's Age added.
func TestObserveResponse(t *testing.T) {
	var age string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if age != "" {
			w.Header().Set("Age", age)
		}
		switch r.URL.Path {
		case "/old":
			w.Header().Set("Date", real.Format(http.TimeFormat))
		case "/none":
			w.Header()["Date"] = nil
		}
	}))
	defer srv.Close()
	f := &fakeClocks{wall: real.AddDate(3, 0, 0), boot: time.Minute, kernel: wallclock.KernelUnsynced}
	c := f.clock(wallclock.Options{BuildTime: build, AuthenticatedDatesOnly: true})
	get := func(path string) {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		c.ObserveResponse(resp)
	}
	get("/none")
	if r := c.Read(); r.Synced {
		t.Fatal("a response without Date taught the time")
	}
	age = "120"
	get("/old")
	r := c.Read()
	if want := real.Add(2 * time.Minute); !r.Synced || !r.Estimate.Equal(want) {
		t.Fatalf("estimate %s synced %v, want %s (Date + Age)", r.Estimate, r.Synced, want)
	}
	if !strings.Contains(r.WallErr.Error(), "the Date of "+srv.Listener.Addr().String()) {
		t.Errorf("untrusted clock does not name the server: %v", r.WallErr)
	}
	age = ""
	f.set(time.Now(), wallclock.KernelUnsynced)
	get("/")
	if err := c.Check(); err != nil {
		t.Errorf("clock agreeing with a Date over TLS not trusted: %v", err)
	}
}

// A certificate "expired or not yet valid" on an untrusted clock is the
// clock's failure; on a trusted clock it is the certificate's.
func TestCertificateTimeError(t *testing.T) {
	ca, err := tlstest.NewCA("wallclock test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(tlstest.LoopbackHosts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	defer srv.Close()
	ahead := time.Now().AddDate(3, 0, 0)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, Time: func() time.Time { return ahead }}}}
	_, tlsErr := client.Get(srv.URL)
	var inv x509.CertificateInvalidError
	if !errors.As(tlsErr, &inv) {
		t.Fatalf("want a validity failure, got %v", tlsErr)
	}

	f := &fakeClocks{wall: ahead, boot: time.Minute, kernel: wallclock.KernelUnsynced}
	c := f.clock(wallclock.Options{BuildTime: build})
	err = c.CertificateTimeError(tlsErr, "registry.test")
	if !errors.Is(err, wallclock.ErrUntrusted) {
		t.Fatalf("want the clock's failure, got %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "the certificate of registry.test is valid from") || !strings.Contains(msg, "unsynchronized") {
		t.Errorf("message: %s", msg)
	}
	f.set(ahead, wallclock.KernelSynced)
	if err := c.CertificateTimeError(tlsErr, "registry.test"); err != nil {
		t.Errorf("on a trusted clock the certificate is at fault, got %v", err)
	}
	if err := c.CertificateTimeError(errors.New("connection refused"), "registry.test"); err != nil {
		t.Errorf("not a certificate failure: %v", err)
	}
}

// The real clocks of this machine: the boot clock moves, the boot has an
// ID, and the kernel answers adjtimex (synced or not, it is not an error).
func TestRealClocks(t *testing.T) {
	c := wallclock.New(wallclock.Options{})
	a := c.Read()
	time.Sleep(20 * time.Millisecond)
	b := c.Read()
	if b.Boot-a.Boot < 20*time.Millisecond || a.BootID != b.BootID || a.BootID == "" {
		t.Fatalf("boot clock %v → %v, id %q", a.Boot, b.Boot, a.BootID)
	}
	if id, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		if strings.TrimSpace(string(id)) != a.BootID {
			t.Errorf("boot ID %q, kernel says %q", a.BootID, id)
		}
		if !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(a.BootID) {
			t.Errorf("boot ID %q", a.BootID)
		}
		k, err := wallclock.ReadKernel()
		if err != nil || k == wallclock.KernelUnknown {
			t.Errorf("adjtimex: %v %v", k, err)
		}
		t.Logf("this machine's kernel reports the clock %s", k)
	}
}
