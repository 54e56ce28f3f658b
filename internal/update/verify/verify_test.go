package verify_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/radarpod/radarpod/internal/registrytest"
	"github.com/radarpod/radarpod/internal/release"
	"github.com/radarpod/radarpod/internal/release/releasetest"
	"github.com/radarpod/radarpod/internal/tlstest"
	"github.com/radarpod/radarpod/internal/update/verify"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// fixture is one release world: a registry, a root CA, a signer whose CRL
// distribution point is the loopback CRL server, and a current CRL served
// there.
type fixture struct {
	t        *testing.T
	ctx      context.Context
	host     string
	repo     string
	pki      *releasetest.PKI
	ca       *release.CA
	signer   *release.Identity
	crl      *releasetest.CRLServer
	stateDir string
}

func newFixture(t *testing.T, host string) *fixture {
	t.Helper()
	pki := releasetest.NewPKI(t)
	return &fixture{
		t: t, ctx: context.Background(), host: host, repo: host + "/radar-agent",
		pki: pki, ca: pki.CA, signer: pki.Signer, crl: pki.CRL, stateDir: t.TempDir(),
	}
}

func (f *fixture) issueSigner(ca *release.CA, o release.SignerOptions) *release.Identity {
	f.t.Helper()
	id, err := ca.IssueSigner(o)
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) issueCRL(ca *release.CA, o release.CRLOptions) *release.CRL {
	f.t.Helper()
	c, err := ca.IssueCRL(o)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fixture) foreignCA() *release.CA { return f.pki.ForeignCA() }

func agentSpec(version, title string, platforms ...string) registrytest.ImageSpec {
	return registrytest.ImageSpec{
		Platforms:  platforms,
		Files:      map[string][]byte{"/radar-agent": []byte("#!agent " + version)},
		Entrypoint: []string{"/radar-agent"},
		User:       "65532:65532",
		Labels: map[string]string{
			verify.LabelVersion:               version,
			verify.LabelTitle:                 title,
			"org.opencontainers.image.source": "https://github.com/radarpod/radarpod",
		},
	}
}

var multiArch = []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}

func (f *fixture) push(ref string, spec registrytest.ImageSpec) string {
	f.t.Helper()
	d, err := registrytest.PushImage(f.ctx, ref, spec)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fixture) sign(id *release.Identity, ref string) release.Signed {
	f.t.Helper()
	s, err := release.Sign(f.ctx, id, ref, release.SignOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// pushSigned pushes a multi-arch agent image at version and signs it.
func (f *fixture) pushSigned(version string) string {
	f.t.Helper()
	ref := f.repo + ":" + version
	d := f.push(ref, agentSpec(version, "radar-agent", multiArch...))
	f.sign(f.signer, ref)
	return d
}

func (f *fixture) config() verify.Config {
	return verify.Config{
		Repository: f.repo,
		Component:  "radar-agent",
		RootCAPEM:  release.EncodeCerts(f.ca.Cert),
		CRLURL:     f.crl.URL(),
		StateDir:   f.stateDir,
		HTTPClient: f.crl.Client(),
		Clock:      testClock(time.Now, wallclock.KernelSynced, time.Time{}),
		Logger:     slog.New(slog.NewTextHandler(f.t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// testClock is the updater's wallclock with the system clock reading now(),
// the kernel reporting kernel, and the binary built at build (zero: an
// unstamped build).
func testClock(now func() time.Time, kernel wallclock.KernelState, build time.Time) *wallclock.Clock {
	return wallclock.New(wallclock.Options{
		Now:       now,
		Kernel:    func() (wallclock.KernelState, error) { return kernel, nil },
		BuildTime: build, AuthenticatedDatesOnly: true,
	})
}

func at(t time.Time) func() time.Time {
	return func() time.Time { return t }
}

// The clocks a Pi without RTC boots with (issue: 1970, the build time - 1
// day, 3 years ahead) against the build of a month ago.
var (
	built     = time.Now().Add(-30 * 24 * time.Hour)
	epoch     = at(time.Unix(20, 0))
	dayBefore = at(built.Add(-24 * time.Hour))
	ahead     = func() time.Time { return time.Now().AddDate(3, 0, 0) }
)

func (f *fixture) verify(version, running string, mods ...func(*verify.Config)) (verify.Verified, error) {
	f.t.Helper()
	cfg := f.config()
	for _, m := range mods {
		m(&cfg)
	}
	v, err := verify.New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	return v.Verify(ctx, version, running)
}

// mustAccept runs a verification that has to pass (to seed the CRL cache
// and the highest CRL number seen).
func (f *fixture) mustAccept(version, running string) verify.Verified {
	f.t.Helper()
	got, err := f.verify(version, running)
	if err != nil {
		f.t.Fatalf("seeding verification: %v", err)
	}
	return got
}

type outcome struct {
	code      string // refusal code; "" means accepted
	unsynced  bool   // wallclock.ErrUntrusted
	transient bool   // neither: retry later
	// says is in the message of an untrusted clock: what the clock was
	// compared with.
	says string
}

func accepted() outcome           { return outcome{} }
func refused(code string) outcome { return outcome{code: code} }

func TestVerify(t *testing.T) {
	cases := []struct {
		name string
		// setup prepares the registry, PKI and CRL server and returns the
		// announcement, the running version and config changes.
		setup func(f *fixture) (version, running string, mods []func(*verify.Config))
		want  outcome
		check func(t *testing.T, f *fixture, v verify.Verified)
		// registry starts the registry; nil means StartInProcess.
		registry func(t *testing.T) string
	}{
		{
			name: "multi-arch index signed and current",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				return "1.2.0", "1.1.0", nil
			},
			want: accepted(),
			check: func(t *testing.T, f *fixture, v verify.Verified) {
				d, err := registrytest.PushImage(f.ctx, f.repo+":again", agentSpec("1.2.0", "radar-agent", multiArch...))
				if err != nil {
					t.Fatal(err)
				}
				if v.Digest != d || v.Reference != f.repo+"@"+d {
					t.Errorf("verified %s / %s, want the index digest %s", v.Reference, v.Digest, d)
				}
				if v.Version != "1.2.0" || v.Title != "radar-agent" {
					t.Errorf("version %q title %q", v.Version, v.Title)
				}
				if v.SignerSerial != release.FormatSerial(f.signer.Leaf().SerialNumber) || !strings.Contains(v.SignerSubject, "Radar Pod Test Signer") {
					t.Errorf("signer %q serial %q", v.SignerSubject, v.SignerSerial)
				}
				if err := verify.CheckPulled(v, []string{f.repo + "@" + d}); err != nil {
					t.Errorf("CheckPulled of the verified digest: %v", err)
				}
			},
		},
		{
			name: "single-platform manifest",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				ref := f.repo + ":2.0.0"
				f.push(ref, agentSpec("2.0.0", "radar-agent", "linux/arm64"))
				f.sign(f.signer, ref)
				return "2.0.0", "1.9.9", []func(*verify.Config){func(c *verify.Config) {
					c.Platform = ocispec.Platform{OS: "linux", Architecture: "arm64"}
				}}
			},
			want: accepted(),
		},
		{
			name: "armv7 manifest of an index, v-prefixed announcement",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				return "v1.2.0", "0.0.0-dev", []func(*verify.Config){func(c *verify.Config) {
					c.Platform = ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
				}}
			},
			want: accepted(),
		},
		{
			name: "index without this platform",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.Platform = ocispec.Platform{OS: "linux", Architecture: "riscv64"}
				}}
			},
			want: refused(verify.CodeInvalidImage),
		},
		{
			name: "unsigned image",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.push(f.repo+":1.2.0", agentSpec("1.2.0", "radar-agent", multiArch...))
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeUnsigned),
		},
		{
			name: "tag moved to other content after signing",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				tampered := agentSpec("1.2.0", "radar-agent", multiArch...)
				tampered.Files["/radar-agent"] = []byte("#!evil")
				f.push(f.repo+":1.2.0", tampered)
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeUnsigned),
		},
		{
			name: "signature from a foreign root",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				foreign := f.foreignCA()
				id := f.issueSigner(foreign, release.SignerOptions{CommonName: "Test Signer", CRLURL: f.crl.URL()})
				ref := f.repo + ":1.2.0"
				f.push(ref, agentSpec("1.2.0", "radar-agent", multiArch...))
				f.sign(id, ref)
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeUntrustedSignature),
		},
		{
			name: "revoked signer",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				f.crl.Serve(f.issueCRL(f.ca, release.CRLOptions{Revoke: []*big.Int{f.signer.Leaf().SerialNumber}}).PEM)
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeRevoked),
		},
		{
			name: "other serials revoked, signer not",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				old := f.issueSigner(f.ca, release.SignerOptions{CRLURL: f.crl.URL()})
				f.crl.Serve(f.issueCRL(f.ca, release.CRLOptions{Revoke: []*big.Int{old.Leaf().SerialNumber}}).PEM)
				return "1.2.0", "1.1.0", nil
			},
			want: accepted(),
		},
		{
			name: "expired CRL",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				f.crl.Serve(f.issueCRL(f.ca, release.CRLOptions{ThisUpdate: time.Now().Add(-48 * time.Hour), Validity: 24 * time.Hour}).PEM)
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeCRLExpired),
		},
		{
			name: "CRL signed by another CA",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				f.crl.Serve(f.issueCRL(f.foreignCA(), release.CRLOptions{}).PEM)
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeCRLWrongIssuer),
		},
		{
			name: "CRL replay: lower number than seen before",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				older := f.issueCRL(f.ca, release.CRLOptions{})
				newer := f.issueCRL(f.ca, release.CRLOptions{})
				f.crl.Serve(newer.PEM)
				f.mustAccept("1.2.0", "1.1.0")
				// A fresh verifier on the same state dir: the number seen
				// must have been persisted.
				f.crl.Serve(older.PEM)
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeCRLReplay),
		},
		{
			name: "CRL unreachable, nothing cached",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				f.crl.Fail(http.StatusServiceUnavailable)
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeCRLUnreachable),
		},
		{
			name: "CRL unreachable, cached CRL still current",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				f.mustAccept("1.2.0", "1.1.0")
				f.crl.Fail(http.StatusInternalServerError)
				return "1.2.0", "1.1.0", nil
			},
			want: accepted(),
		},
		{
			name: "CRL unreachable, cached CRL expired",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				f.crl.Serve(f.issueCRL(f.ca, release.CRLOptions{Validity: 2 * time.Minute}).PEM)
				f.mustAccept("1.2.0", "1.1.0")
				f.crl.Fail(http.StatusNotFound)
				// Three minutes on: past the cached nextUpdate, yet within
				// the clock-skew bound of the registry's Date header.
				later := time.Now().Add(3 * time.Minute)
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.Clock = testClock(at(later), wallclock.KernelSynced, time.Time{})
				}}
			},
			want: refused(verify.CodeCRLUnreachable),
		},
		{
			name: "CRL server unreachable (connection refused)",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				f.crl.Server().Close()
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeCRLUnreachable),
		},
		{
			name: "oversized CRL",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				good := f.issueCRL(f.ca, release.CRLOptions{}).PEM
				f.crl.Serve(append(good, bytes.Repeat([]byte("\n"), verify.MaxCRLSize)...))
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeCRLTooLarge),
		},
		{
			name: "garbage instead of a CRL",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				f.crl.Serve([]byte("<html>bucket moved</html>"))
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeCRLInvalid),
		},
		{
			name: "signer without CRL distribution point",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				id := f.issueSigner(f.ca, release.SignerOptions{OmitCRLDistributionPoint: true})
				ref := f.repo + ":1.2.0"
				f.push(ref, agentSpec("1.2.0", "radar-agent", multiArch...))
				f.sign(id, ref)
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeNoCRLDistributionPoint),
		},
		{
			name: "signer whose CRL distribution point is elsewhere",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				id := f.issueSigner(f.ca, release.SignerOptions{CRLURL: "https://crl.example.invalid/root.crl"})
				ref := f.repo + ":1.2.0"
				f.push(ref, agentSpec("1.2.0", "radar-agent", multiArch...))
				f.sign(id, ref)
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeNoCRLDistributionPoint),
		},
		{
			name: "downgrade",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.0.0")
				return "1.0.0", "1.1.0", nil
			},
			want: refused(verify.CodeDowngrade),
		},
		{
			name: "same version as running",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.1.0")
				return "1.1.0", "1.1.0", nil
			},
			want: refused(verify.CodeDowngrade),
		},
		{
			name: "pre-release of the running version",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.1.0-rc.1")
				return "1.1.0-rc.1", "1.1.0", nil
			},
			want: refused(verify.CodeDowngrade),
		},
		{
			name: "version label differs from the announcement",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				ref := f.repo + ":1.3.0"
				f.push(ref, agentSpec("1.2.0", "radar-agent", multiArch...))
				f.sign(f.signer, ref)
				return "1.3.0", "1.1.0", nil
			},
			want: refused(verify.CodeVersionMismatch),
		},
		{
			name: "signed for another repository, copied here",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				other := f.host + "/mirror/radar-agent:1.2.0"
				f.push(other, agentSpec("1.2.0", "radar-agent", multiArch...))
				f.sign(f.signer, other)
				if err := registrytest.CopyWithSignatures(f.ctx, other, f.repo+":1.2.0"); err != nil {
					f.t.Fatal(err)
				}
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeWrongRepository),
		},
		{
			name: "signed updater image copied into the agent repository",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				upd := f.host + "/radar-updater:1.2.0"
				f.push(upd, agentSpec("1.2.0", "radar-updater", multiArch...))
				f.sign(f.signer, upd)
				if err := registrytest.CopyWithSignatures(f.ctx, upd, f.repo+":1.2.0"); err != nil {
					f.t.Fatal(err)
				}
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeWrongRepository),
		},
		{
			name: "updater image signed in the agent repository",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				ref := f.repo + ":1.2.0"
				f.push(ref, agentSpec("1.2.0", "radar-updater", multiArch...))
				f.sign(f.signer, ref)
				return "1.2.0", "1.1.0", nil
			},
			want: refused(verify.CodeWrongComponent),
		},
		{
			name: "announced tag missing",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				return "1.3.0", "1.1.0", nil
			},
			want: refused(verify.CodeNotFound),
		},
		{
			name: "announcement is not semver",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				return "latest", "1.1.0", nil
			},
			want: refused(verify.CodeInvalidVersion),
		},
		{
			name: "clock before the build time",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.Clock = testClock(time.Now, wallclock.KernelSynced, time.Now().Add(24*time.Hour))
				}}
			},
			want: outcome{unsynced: true, says: "before this build"},
		},
		{
			name: "1970, kernel unsynchronized",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.Clock = testClock(epoch, wallclock.KernelUnsynced, built)
				}}
			},
			want: outcome{unsynced: true, says: "it reads 1970-01-01T00:00:20Z, before this build"},
		},
		{
			name: "build time - 1 day, kernel unsynchronized",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.Clock = testClock(dayBefore, wallclock.KernelUnsynced, built)
				}}
			},
			want: outcome{unsynced: true, says: "before this build"},
		},
		{
			name: "3 years ahead, kernel unsynchronized, Dates over TLS and plain HTTP",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.Clock = testClock(ahead, wallclock.KernelUnsynced, built)
				}}
			},
			want: outcome{unsynced: true, says: "ahead of the Date of"},
		},
		{
			// The hole of the partial version: the cached CRL judged by a
			// clock years ahead came out as crl_unreachable (cached CRL
			// expired), with no Date anywhere to show the clock wrong.
			name:     "3 years ahead, CRL host down, cached CRL, registry without Date",
			registry: registryWithoutDate,
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				f.mustAccept("1.2.0", "1.1.0")
				f.crl.Server().Close()
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.Clock = testClock(ahead, wallclock.KernelUnsynced, built)
				}}
			},
			want: outcome{unsynced: true, says: "the kernel reports it unsynchronized (adjtimex) and no server's Date has confirmed it"},
		},
		{
			name: "3 years ahead, kernel claims synchronized, CRL host answers 503 with its Date, cached CRL",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				f.mustAccept("1.2.0", "1.1.0")
				f.crl.Fail(http.StatusServiceUnavailable)
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.Clock = testClock(ahead, wallclock.KernelSynced, built)
				}}
			},
			want: outcome{unsynced: true, says: "ahead of the Date of"},
		},
		{
			// In 2100 the CRL host's certificate has expired: the clock's
			// failure, not an unreachable CRL.
			name:     "clock in 2100, the CRL host's certificate expired at this clock",
			registry: registryWithoutDate,
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				in2100 := at(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.HTTPClient = clientAt(f.crl.Client(), in2100)
					c.Clock = testClock(in2100, wallclock.KernelUnsynced, built)
				}}
			},
			want: outcome{unsynced: true, says: "the certificate of the CRL host"},
		},
		{
			name: "synchronized: kernel unsynchronized, the CRL host's Date over TLS agrees",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.Clock = testClock(time.Now, wallclock.KernelUnsynced, built)
				}}
			},
			want: accepted(),
		},
		{
			name:     "synchronized by the kernel, CRL host down, cached CRL current, no Date anywhere",
			registry: registryWithoutDate,
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				f.mustAccept("1.2.0", "1.1.0")
				f.crl.Server().Close()
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.Clock = testClock(time.Now, wallclock.KernelSynced, built)
				}}
			},
			want: accepted(),
		},
		{
			// Only a Date received over TLS vouches for the clock the
			// certificates are judged by; the loopback registry speaks
			// plain HTTP.
			name: "kernel unsynchronized, only the plain-HTTP registry's Date agrees",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				f.mustAccept("1.2.0", "1.1.0")
				f.crl.Server().Close()
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.Clock = testClock(time.Now, wallclock.KernelUnsynced, built)
				}}
			},
			want: outcome{unsynced: true, says: "no server's Date received over TLS has confirmed it"},
		},
		{
			// With no cached CRL there is nothing the clock could change.
			name: "kernel unsynchronized, CRL host down, nothing cached",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				f.crl.Server().Close()
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.Clock = testClock(ahead, wallclock.KernelUnsynced, built)
				}}
			},
			want: refused(verify.CodeCRLUnreachable),
		},
		{
			name:     "clock far from the CRL server's Date (registry sends none)",
			registry: registryWithoutDate,
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.Clock = testClock(func() time.Time { return time.Now().Add(10 * time.Minute) }, wallclock.KernelSynced, time.Time{})
				}}
			},
			want: outcome{unsynced: true, says: "ahead of the Date of 127.0.0.1"},
		},
		{
			name:     "registry unreachable",
			registry: func(t *testing.T) string { return "127.0.0.1:1" },
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				return "1.2.0", "1.1.0", nil
			},
			want: outcome{transient: true},
		},
		{
			name: "clock far from the registry's Date",
			setup: func(f *fixture) (string, string, []func(*verify.Config)) {
				f.pushSigned("1.2.0")
				return "1.2.0", "1.1.0", []func(*verify.Config){func(c *verify.Config) {
					c.Clock = testClock(func() time.Time { return time.Now().Add(-2 * time.Hour) }, wallclock.KernelSynced, time.Now().Add(-48*time.Hour))
				}}
			},
			want: outcome{unsynced: true, says: "behind the Date of"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := tc.registry
			if start == nil {
				start = func(t *testing.T) string { return registrytest.StartInProcess(t) }
			}
			f := newFixture(t, start(t))
			version, running, mods := tc.setup(f)
			got, err := f.verify(version, running, mods...)
			checkOutcome(t, got, err, tc.want)
			if tc.check != nil && err == nil {
				tc.check(t, f, got)
			}
		})
	}
}

func checkOutcome(t *testing.T, got verify.Verified, err error, want outcome) {
	t.Helper()
	var r *verify.Refusal
	switch {
	case want.transient:
		if err == nil || errors.As(err, &r) || errors.Is(err, wallclock.ErrUntrusted) {
			t.Fatalf("want a transient error, got %+v, %v", got, err)
		}
		t.Logf("transient as expected: %v", err)
	case want.unsynced:
		if !errors.Is(err, wallclock.ErrUntrusted) {
			t.Fatalf("want wallclock.ErrUntrusted, got %+v, %v", got, err)
		}
		if errors.As(err, &r) {
			t.Fatalf("an untrusted clock must not be a refusal: %v", err)
		}
		if !strings.Contains(err.Error(), want.says) {
			t.Fatalf("untrusted clock without %q: %v", want.says, err)
		}
		t.Logf("untrusted clock as expected: %v", err)
	case want.code == "":
		if err != nil {
			t.Fatalf("want accepted, got %v", err)
		}
		if got.Digest == "" || !strings.HasSuffix(got.Reference, "@"+got.Digest) {
			t.Fatalf("accepted without a digest reference: %+v", got)
		}
	default:
		if !errors.As(err, &r) {
			t.Fatalf("want refusal %q, got %+v, %v", want.code, got, err)
		}
		if r.Code != want.code {
			t.Fatalf("want refusal %q, got %q: %v", want.code, r.Code, err)
		}
		if got != (verify.Verified{}) {
			t.Fatalf("refusal returned an image to pull: %+v", got)
		}
		t.Logf("refused as expected: %v", err)
	}
}

// The signer's CRL distribution point must be the only URL fetched: a
// signer pointing elsewhere makes no request there (it is refused), and the
// configured URL is fetched once per verification.
func TestCRLFetchedOnlyFromConfiguredURL(t *testing.T) {
	f := newFixture(t, registrytest.StartInProcess(t))
	elsewhere := releasetest.StartCRLServer(t)
	elsewhere.Serve(f.issueCRL(f.ca, release.CRLOptions{}).PEM)
	id := f.issueSigner(f.ca, release.SignerOptions{CRLURL: elsewhere.URL()})
	ref := f.repo + ":1.2.0"
	f.push(ref, agentSpec("1.2.0", "radar-agent", multiArch...))
	f.sign(id, ref)

	_, err := f.verify("1.2.0", "1.1.0", func(c *verify.Config) {
		// Trust both test servers' certificates: only policy may stop the
		// fetch from the other one.
		c.HTTPClient = clientTrusting(f.crl.Server(), elsewhere.Server())
	})
	checkOutcome(t, verify.Verified{}, err, refused(verify.CodeNoCRLDistributionPoint))
	if n := elsewhere.Requests(); n != 0 {
		t.Errorf("the signer's own CRL URL was fetched %d times", n)
	}
	if n := f.crl.Requests(); n != 1 {
		t.Errorf("configured CRL URL fetched %d times, want 1", n)
	}

	// A redirect from the configured URL is not followed either.
	f.pushSigned("1.3.0")
	f.crl.Redirect(elsewhere.URL())
	_, err = f.verify("1.3.0", "1.1.0", func(c *verify.Config) {
		c.HTTPClient = clientTrusting(f.crl.Server(), elsewhere.Server())
		c.StateDir = t.TempDir() // nothing cached
	})
	checkOutcome(t, verify.Verified{}, err, refused(verify.CodeCRLUnreachable))
	if n := elsewhere.Requests(); n != 0 {
		t.Errorf("redirect followed: %d requests elsewhere", n)
	}
}

// registryWithoutDate is an in-process registry whose answers carry no
// Date header.
func registryWithoutDate(t *testing.T) string {
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil // suppresses net/http's automatic Date
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// clientAt is c checking certificates at the time now() says.
func clientAt(c *http.Client, now func() time.Time) *http.Client {
	cc := *c
	tr := c.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Time = now
	cc.Transport = tr
	return &cc
}

func clientTrusting(servers ...*httptest.Server) *http.Client {
	c := servers[0].Client()
	tr := c.Transport.(*http.Transport).Clone()
	pool := tr.TLSClientConfig.RootCAs
	for _, s := range servers[1:] {
		pool.AddCert(s.Certificate())
	}
	c.Transport = tr
	return c
}

func TestCheckPulled(t *testing.T) {
	v := verify.Verified{
		Reference: "127.0.0.1:5000/radar-agent@sha256:1111111111111111111111111111111111111111111111111111111111111111",
		Digest:    "sha256:1111111111111111111111111111111111111111111111111111111111111111",
	}
	other := "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	cases := []struct {
		name   string
		pulled []string
		ok     bool
	}{
		{"repo digest", []string{"127.0.0.1:5000/radar-agent@" + v.Digest}, true},
		{"bare digest", []string{v.Digest}, true},
		{"one of several", []string{"127.0.0.1:5000/radar-agent@" + other, "127.0.0.1:5000/radar-agent@" + v.Digest}, true},
		{"other digest", []string{"127.0.0.1:5000/radar-agent@" + other}, false},
		{"same digest, other repository", []string{"127.0.0.1:5000/radar-updater@" + v.Digest}, false},
		{"nothing pulled", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := verify.CheckPulled(v, tc.pulled)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var r *verify.Refusal
			if !errors.As(err, &r) || r.Code != verify.CodeDigestMismatch {
				t.Fatalf("want digest_mismatch refusal, got %v", err)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	f := newFixture(t, "127.0.0.1:1")
	leafPEM := release.EncodeCerts(f.signer.Leaf())
	cases := []struct {
		name string
		mod  func(*verify.Config)
	}{
		{"repository with tag", func(c *verify.Config) { c.Repository += ":1.0.0" }},
		{"no component", func(c *verify.Config) { c.Component = "" }},
		{"no root", func(c *verify.Config) { c.RootCAPEM = nil }},
		{"leaf as root", func(c *verify.Config) { c.RootCAPEM = leafPEM }},
		{"two roots", func(c *verify.Config) { c.RootCAPEM = append(c.RootCAPEM, c.RootCAPEM...) }},
		{"http CRL URL", func(c *verify.Config) { c.CRLURL = "http://example.com/crl.pem" }},
		{"no state dir", func(c *verify.Config) { c.StateDir = "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := f.config()
			tc.mod(&cfg)
			if _, err := verify.New(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// A state file that exists but cannot be read fails closed: starting over
// would let an older CRL than one seen before through. The operator's reset
// (what `radar-updater reset-crl-state` runs) is the way out.
func TestCorruptCRLStateRefusesUntilReset(t *testing.T) {
	for name, content := range map[string]string{
		"truncated JSON":         `{"url": "https://`,
		"highest number garbled": `{"url": "x", "highest_number": "12a"}`,
		"negative number":        `{"url": "x", "highest_number": "-3"}`,
		"cached CRL, no number":  `{"url": "x", "crl": "MAo="}`,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, registrytest.StartInProcess(t))
			f.pushSigned("1.2.0")
			f.mustAccept("1.2.0", "1.1.0")
			state := filepath.Join(f.stateDir, verify.CRLStateFile)
			if err := os.WriteFile(state, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := f.verify("1.2.0", "1.1.0")
			checkOutcome(t, verify.Verified{}, err, refused(verify.CodeCRLStateCorrupt))
			if !strings.Contains(err.Error(), "reset-crl-state") {
				t.Errorf("refusal does not tell the operator the way out: %v", err)
			}
			// Not even a CRL server that is down makes it fall back to
			// starting over.
			f.crl.Fail(http.StatusServiceUnavailable)
			_, err = f.verify("1.2.0", "1.1.0")
			checkOutcome(t, verify.Verified{}, err, refused(verify.CodeCRLStateCorrupt))
			if b, _ := os.ReadFile(state); string(b) != content {
				t.Fatal("the corrupt state file was changed behind the operator's back")
			}

			moved, err := verify.ResetCRLState(f.stateDir)
			if err != nil || moved == "" {
				t.Fatalf("reset: %q, %v", moved, err)
			}
			if b, err := os.ReadFile(moved); err != nil || string(b) != content {
				t.Errorf("the reset did not keep the old state for inspection: %v", err)
			}
			f.crl.Serve(f.issueCRL(f.ca, release.CRLOptions{}).PEM)
			f.mustAccept("1.2.0", "1.1.0")
			if moved, err := verify.ResetCRLState(t.TempDir()); moved != "" || err != nil {
				t.Errorf("reset without a state file: %q, %v", moved, err)
			}
		})
	}
}

// A pod whose clock is far off fails the registry's TLS handshake with
// "certificate has expired or is not yet valid" before any response (so no
// Date header to compare with): that is waiting for the clock, not a
// transient failure. The registry is a real TLS server on loopback, under a
// non-loopback name so the verifier speaks HTTPS to it.
func TestTLSValidityErrorOnAnUnsyncedClockWaitsForTheClock(t *testing.T) {
	ca, err := tlstest.NewCA("registry test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("registry.test")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	f := newFixture(t, "registry.test:"+port)
	client := func(clock func() time.Time) *http.Client {
		var d net.Dialer
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, srv.Listener.Addr().String())
			},
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool, Time: clock},
		}}
	}
	// The pod booted at a time saved two years ago (after its build).
	behind := func() time.Time { return time.Now().Add(-2 * 365 * 24 * time.Hour) }
	_, err = f.verify("1.2.0", "1.1.0", func(c *verify.Config) {
		c.RegistryHTTPClient = client(behind)
		c.Clock = testClock(behind, wallclock.KernelUnsynced, behind().Add(-24*time.Hour))
	})
	checkOutcome(t, verify.Verified{}, err, outcome{unsynced: true, says: "the certificate of the registry registry.test:" + port + " is valid from"})
	// The same registry with a synced clock is reached: the error above
	// was the clock's, not the test setup's (the tag does not exist).
	_, err = f.verify("1.2.0", "1.1.0", func(c *verify.Config) { c.RegistryHTTPClient = client(time.Now) })
	checkOutcome(t, verify.Verified{}, err, refused(verify.CodeNotFound))
}
