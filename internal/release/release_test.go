package release_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corex509 "github.com/notaryproject/notation-core-go/x509"

	"github.com/radarpod/radarpod/internal/registrytest"
	"github.com/radarpod/radarpod/internal/release"
	"github.com/radarpod/radarpod/internal/release/releasetest"
	"github.com/radarpod/radarpod/internal/update/verify"
)

const crlURL = "https://storage.googleapis.com/radar.exactlylabs.com/rootCRL.crl.pem"

func TestCertificatesMeetNotationRequirements(t *testing.T) {
	ca, err := release.InitCA(t.TempDir(), release.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := ca.Cert
	if !root.IsCA || !root.BasicConstraintsValid || root.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign || root.CheckSignatureFrom(root) != nil {
		t.Fatalf("root: CA=%v usage=%v", root.IsCA, root.KeyUsage)
	}
	for _, kt := range release.KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			id, err := ca.IssueSigner(release.SignerOptions{KeyType: kt, CRLURL: crlURL})
			if err != nil {
				t.Fatal(err)
			}
			leaf := id.Leaf()
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageCodeSigning {
				t.Errorf("usage %v ext %v", leaf.KeyUsage, leaf.ExtKeyUsage)
			}
			if len(leaf.CRLDistributionPoints) != 1 || leaf.CRLDistributionPoints[0] != crlURL {
				t.Errorf("CDP %v", leaf.CRLDistributionPoints)
			}
			critical := false
			for _, e := range leaf.Extensions {
				if e.Id.String() == "2.5.29.15" {
					critical = e.Critical
				}
			}
			if !critical {
				t.Error("KeyUsage not critical")
			}
			switch k := leaf.PublicKey.(type) {
			case *ecdsa.PublicKey:
				want := map[release.KeyType]elliptic.Curve{release.KeyECDSAP256: elliptic.P256(), release.KeyECDSAP384: elliptic.P384()}[kt]
				if k.Curve != want {
					t.Errorf("curve %v", k.Curve.Params().Name)
				}
			case *rsa.PublicKey:
				if kt != release.KeyRSA3072 || k.N.BitLen() != 3072 {
					t.Errorf("RSA %d bits for %s", k.N.BitLen(), kt)
				}
			}
			// notation's own validation of a code-signing chain.
			now := time.Now()
			if err := corex509.ValidateCodeSigningCertChain(id.Chain, &now); err != nil {
				t.Fatalf("notation rejects the chain: %v", err)
			}
			pool := x509.NewCertPool()
			pool.AddCert(root)
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
				t.Fatalf("chain: %v", err)
			}
		})
	}
}

func TestIssueSignerRequiresCRLURL(t *testing.T) {
	ca, err := release.InitCA(t.TempDir(), release.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.IssueSigner(release.SignerOptions{}); err == nil {
		t.Fatal("issued a signer pods would refuse")
	}
}

func TestInitCARefusesToReplaceRootAndKeepsKeyPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	ca, err := release.InitCA(dir, release.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, release.RootKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("root key mode %v, %v", fi.Mode(), err)
	}
	if _, err := release.InitCA(dir, release.CAOptions{}); err == nil {
		t.Fatal("second InitCA replaced the root")
	}
	loaded, err := release.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) {
		t.Fatal("loaded another root")
	}
	if err := os.Chmod(filepath.Join(dir, release.RootKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := release.LoadCA(dir); err == nil {
		t.Fatal("loaded a world-readable root key")
	}
}

func TestCRLNumbersGrowAndRevocationsAccumulate(t *testing.T) {
	dir := t.TempDir()
	if _, err := release.InitCA(dir, release.CAOptions{}); err != nil {
		t.Fatal(err)
	}
	a, b := big.NewInt(0xabc), big.NewInt(0xdef)
	steps := []struct {
		revoke []*big.Int
		want   []string
	}{
		{nil, nil},
		{[]*big.Int{a}, []string{"abc"}},
		{[]*big.Int{b, a}, []string{"abc", "def"}},
		{nil, []string{"abc", "def"}},
	}
	for i, s := range steps {
		// Reload each time, as separate radar-sign runs do.
		ca, err := release.LoadCA(dir)
		if err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		crl, err := ca.IssueCRL(release.CRLOptions{Revoke: s.revoke, Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(crl.PEM)
		if blk == nil || blk.Type != "X509 CRL" {
			t.Fatalf("not a PEM CRL: %q", crl.PEM)
		}
		list, err := x509.ParseRevocationList(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if err := list.CheckSignatureFrom(ca.Cert); err != nil {
			t.Fatalf("CRL not signed by the root: %v", err)
		}
		if list.Number.Int64() != int64(i+1) {
			t.Errorf("step %d: number %v", i, list.Number)
		}
		if list.ThisUpdate.Before(before.Add(-time.Second)) || !list.NextUpdate.Equal(list.ThisUpdate.Add(time.Hour)) {
			t.Errorf("step %d: thisUpdate %v nextUpdate %v", i, list.ThisUpdate, list.NextUpdate)
		}
		var got []string
		for _, e := range list.RevokedCertificateEntries {
			got = append(got, release.FormatSerial(e.SerialNumber))
		}
		if strings.Join(got, ",") != strings.Join(s.want, ",") {
			t.Errorf("step %d: revoked %v, want %v", i, got, s.want)
		}
	}
}

func TestParseSerial(t *testing.T) {
	for in, want := range map[string]int64{"abc": 0xabc, "0xABC": 0xabc, "0a:bc": 0xabc, " 10 ": 16} {
		n, err := release.ParseSerial(in)
		if err != nil || n.Int64() != want {
			t.Errorf("%q: %v %v", in, n, err)
		}
	}
	for _, bad := range []string{"", "xyz", "0", "-1"} {
		if _, err := release.ParseSerial(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := release.Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := run(t, args...)
	if code != release.ExitOK {
		t.Fatalf("radar-sign %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// radar-sign end to end: the PKI, signature and CRLs it makes are what the
// updater's verifier accepts, and a revocation it issues is honoured.
func TestRadarSignEndToEnd(t *testing.T) {
	ctx := context.Background()
	host := releasetest.StartCRLServer(t)
	url := host.URL()

	work := t.TempDir()
	pki := filepath.Join(work, "pki")
	cert, key := filepath.Join(work, "signer.pem"), filepath.Join(work, "signer.key")
	crlFile := filepath.Join(work, "rootCRL.crl.pem")

	mustRun(t, "init-ca", "--dir", pki, "--name", "E2E Root")
	out := mustRun(t, "issue-signer", "--dir", pki, "--crl-url", url, "--name", "E2E Signer", "--key-type", "ecdsa-p384", "--cert", cert, "--key", key)
	serial := regexp.MustCompile(`serial ([0-9a-f]+)`).FindStringSubmatch(out)
	if serial == nil {
		t.Fatalf("issue-signer printed no serial: %q", out)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signer key mode: %v %v", fi.Mode(), err)
	}
	if code, _, _ := run(t, "init-ca", "--dir", pki); code != release.ExitError {
		t.Fatalf("second init-ca: exit %d", code)
	}

	reg := registrytest.StartInProcess(t)
	repo := reg + "/radar-agent"
	pushed, err := registrytest.PushImage(ctx, repo+":1.2.0", registrytest.ImageSpec{
		Platforms: []string{"linux/amd64", "linux/arm64", "linux/arm/v7"},
		Files:     map[string][]byte{"/radar-agent": []byte("agent")},
		Labels:    map[string]string{verify.LabelTitle: "radar-agent", verify.LabelVersion: "1.2.0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, "sign", "--cert", cert, "--key", key, repo+":1.2.0")
	if !strings.Contains(out, repo+"@"+pushed) {
		t.Fatalf("sign printed %q, want the digest reference %s@%s", out, repo, pushed)
	}
	mustRun(t, "crl", "--dir", pki, "--out", crlFile, "--next-update", "24h")

	rootPEM, err := os.ReadFile(filepath.Join(pki, release.RootCertFile))
	if err != nil {
		t.Fatal(err)
	}
	verifyNow := func() (verify.Verified, error) {
		t.Helper()
		crl, err := os.ReadFile(crlFile)
		if err != nil {
			t.Fatal(err)
		}
		host.Serve(crl)
		v, err := verify.New(verify.Config{
			Repository: repo, Component: "radar-agent", RootCAPEM: rootPEM,
			CRLURL: url, StateDir: filepath.Join(work, "updater-state"), HTTPClient: host.Client(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return v.Verify(ctx, "1.2.0", "1.1.0")
	}
	got, err := verifyNow()
	if err != nil {
		t.Fatalf("verify what radar-sign made: %v", err)
	}
	if got.Digest != pushed || got.SignerSerial != serial[1] {
		t.Fatalf("verified %+v; pushed %s, serial %s", got, pushed, serial[1])
	}

	out = mustRun(t, "crl", "--dir", pki, "--out", crlFile, "--revoke", serial[1])
	if !strings.Contains(out, "CRL number 2") {
		t.Errorf("second CRL: %q", out)
	}
	_, err = verifyNow()
	var r *verify.Refusal
	if !errors.As(err, &r) || r.Code != verify.CodeRevoked {
		t.Fatalf("after revocation: %v", err)
	}
	// The revocation persists in the CA state: a later refresh still lists it.
	mustRun(t, "crl", "--dir", pki, "--out", crlFile)
	_, err = verifyNow()
	if !errors.As(err, &r) || r.Code != verify.CodeRevoked {
		t.Fatalf("after refresh: %v", err)
	}
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		code int
		out  string // expected in stdout
	}{
		{nil, release.ExitUsage, ""},
		{[]string{"frobnicate"}, release.ExitUsage, ""},
		{[]string{"-h"}, release.ExitOK, "Usage:"},
		{[]string{"init-ca", "-h"}, release.ExitOK, "-key-type"},
		{[]string{"crl", "--help"}, release.ExitOK, "-revoke"},
		{[]string{"init-ca", "--bogus"}, release.ExitUsage, ""},
		{[]string{"init-ca", "--dir", dir, "extra"}, release.ExitUsage, ""},
		{[]string{"init-ca", "--dir", dir, "--key-type", "dsa"}, release.ExitUsage, ""},
		{[]string{"issue-signer", "--dir", dir}, release.ExitUsage, ""},
		{[]string{"issue-signer", "--dir", dir, "--crl-url", "http://insecure/crl"}, release.ExitUsage, ""},
		{[]string{"sign"}, release.ExitUsage, ""},
		{[]string{"sign", "a:1", "b:2"}, release.ExitUsage, ""},
		{[]string{"crl", "--dir", dir, "--revoke", "nothex"}, release.ExitUsage, ""},
		{[]string{"crl", "--dir", dir, "--next-update", "-1h"}, release.ExitUsage, ""},
		{[]string{"crl", "--dir", filepath.Join(dir, "missing")}, release.ExitError, ""},
		{[]string{"version"}, release.ExitOK, "radar-sign"},
	}
	for _, tc := range cases {
		code, out, errOut := run(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) {
			t.Errorf("radar-sign %q: exit %d, stdout %q, stderr %q; want exit %d with %q", tc.args, code, out, errOut, tc.code, tc.out)
		}
		if code == release.ExitUsage && errOut == "" {
			t.Errorf("radar-sign %q: usage error without a message", tc.args)
		}
	}
}

func TestCheckCRL(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "pki")
	if code, _, stderr := run(t, "init-ca", "--dir", ca); code != 0 {
		t.Fatal(stderr)
	}
	root := filepath.Join(ca, "root-ca.pem")
	first, second := filepath.Join(dir, "first.pem"), filepath.Join(dir, "second.pem")
	for _, out := range []string{first, second} {
		if code, _, stderr := run(t, "crl", "--dir", ca, "--next-update", "336h", "--out", out); code != 0 {
			t.Fatal(stderr)
		}
	}
	other := filepath.Join(dir, "other")
	if code, _, stderr := run(t, "init-ca", "--dir", other); code != 0 {
		t.Fatal(stderr)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"current and newer", []string{"--root", root, "--min-validity", "168h", "--newer-than", first, second}, 0, "CRL number 2"},
		{"replay", []string{"--root", root, "--newer-than", second, first}, 1, "replay"},
		{"too little validity left", []string{"--root", root, "--min-validity", "400h", second}, 1, "re-issue"},
		{"another root", []string{"--root", filepath.Join(other, "root-ca.pem"), second}, 1, "crl_wrong_issuer"},
		{"usage", []string{second}, 2, "--root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"check-crl"}, tt.args...)...)
			if code != tt.wantCode || !strings.Contains(stdout+stderr, tt.wantOut) {
				t.Fatalf("exit %d (want %d), output:\n%s%s", code, tt.wantCode, stdout, stderr)
			}
		})
	}
}
