package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/update/statedir"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// fuzzCA is a root that signs CRLs. The release package (which builds the
// real PKI) imports this one, so the fuzz test makes its own with
// crypto/x509.
type fuzzCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newFuzzCA(tb testing.TB, now time.Time) fuzzCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Radar Pod Fuzz Root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return fuzzCA{cert: cert, key: key}
}

func (ca fuzzCA) crl(tb testing.TB, number int64, this, next time.Time, exts ...pkix.Extension) []byte {
	tb.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(number), ThisUpdate: this, NextUpdate: next,
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(77), RevocationTime: this}},
		ExtraExtensions:           exts,
	}, ca.cert, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

func pemCRL(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}) }

// bodyTransport serves one body for the CRL URL, or fails as an
// unreachable bucket does.
type bodyTransport struct {
	body []byte
	fail bool
}

func (b bodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.fail {
		return nil, errors.New("dial tcp: connection refused")
	}
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Header: http.Header{"Content-Type": {"application/x-pem-file"}},
		Body: io.NopCloser(bytes.NewReader(b.body)), ContentLength: int64(len(b.body)), Request: r,
	}, nil
}

// FuzzCRL drives the updater's CRL source — download, PEM/DER parsing,
// issuer, signature, number, validity window and extension checks, replay
// protection and the on-disk cache — with any fetched body and any cached
// state file, the URL up or down. Nothing may panic; a CRL is used only if
// it is signed by the pinned root, current, numbered and not older than one
// seen before; anything else is a Refusal (or a clock or state-saving
// error), never a quiet pass.
func FuzzCRL(f *testing.F) {
	now := time.Now().Truncate(time.Second)
	ca := newFuzzCA(f, now)
	foreign := newFuzzCA(f, now)
	good := ca.crl(f, 5, now.Add(-time.Hour), now.Add(24*time.Hour))
	critical := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}
	delta, _ := asn1.Marshal(big.NewInt(4))
	bodies := [][]byte{
		pemCRL(good), good,
		pemCRL(ca.crl(f, 2, now.Add(-time.Hour), now.Add(time.Hour))),
		pemCRL(ca.crl(f, 6, now.Add(-48*time.Hour), now.Add(-24*time.Hour))), // expired
		pemCRL(ca.crl(f, 7, now.Add(time.Hour), now.Add(48*time.Hour))),      // not yet valid
		pemCRL(ca.crl(f, 8, now, now.Add(time.Hour), critical)),
		pemCRL(ca.crl(f, 9, now, now.Add(time.Hour), pkix.Extension{Id: oidDeltaCRLIndicator, Critical: true, Value: delta})),
		pemCRL(foreign.crl(f, 10, now, now.Add(time.Hour))),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}),
		good[:len(good)/2], []byte("<?xml version='1.0'?><Error><Code>NoSuchKey</Code></Error>"), nil,
	}
	state := func(url, highest string, der []byte) []byte {
		b, _ := json.Marshal(crlState{URL: url, HighestNumber: highest, CRL: der, FetchedAt: now})
		return b
	}
	const url = "https://storage.example/radar/rootCRL.crl.pem"
	states := [][]byte{
		nil, state(url, "5", good), state(url, "6", good), state("https://elsewhere/crl.pem", "3", good),
		state(url, "not a number", good[:10]), []byte(`{"url":`), []byte(`{"highest_number":-1}`),
	}
	for i, b := range bodies {
		for j, st := range states {
			f.Add(b, st, (i+j)%3 == 0)
		}
	}
	dir := f.TempDir()
	statePath := filepath.Join(dir, CRLStateFile)
	stateDir, err := statedir.Open(dir)
	if err != nil {
		f.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	// A synchronized clock: every judgement of the CRL is made.
	clock := wallclock.New(wallclock.Options{Now: func() time.Time { return now },
		Kernel: func() (wallclock.KernelState, error) { return wallclock.KernelSynced, nil }, AuthenticatedDatesOnly: true})
	f.Fuzz(func(t *testing.T, body, stateFile []byte, down bool) {
		os.Remove(statePath)
		if len(stateFile) > 0 {
			if err := os.WriteFile(statePath, stateFile, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// An unusable state file must fail closed, never reset.
		before, stateErr := readCRLState(stateDir)
		src := newCRLSource(url, &http.Client{Transport: bodyTransport{body: body, fail: down}}, ca.cert, stateDir, clock, log)
		list, err := src.current(context.Background())
		if err != nil {
			var r *Refusal
			if !errors.As(err, &r) && !errors.Is(err, wallclock.ErrUntrusted) && !strings.HasPrefix(err.Error(), "save CRL state") {
				t.Fatalf("unclassified failure: %v", err)
			}
			if stateErr != nil && (r == nil || r.Code != CodeCRLStateCorrupt) {
				t.Fatalf("unusable state file (%v) refused as %v, want %s", stateErr, err, CodeCRLStateCorrupt)
			}
			return
		}
		if stateErr != nil {
			t.Fatalf("used CRL %v although the state file is unusable: %v", list.Number, stateErr)
		}
		if list == nil {
			t.Fatal("no CRL and no error")
		}
		if err := list.CheckSignatureFrom(ca.cert); err != nil || !bytes.Equal(list.RawIssuer, ca.cert.RawSubject) {
			t.Fatalf("used a CRL the pinned root did not sign (%v)", err)
		}
		if list.Number == nil || list.Number.Sign() < 0 || now.After(list.NextUpdate) || now.Add(notBeforeTolerance).Before(list.ThisUpdate) {
			t.Fatalf("used a CRL that is unnumbered or not current: number %v, %v..%v", list.Number, list.ThisUpdate, list.NextUpdate)
		}
		// Also when the URL is down: a cached CRL below the highest
		// number seen is never used.
		if h := before.highestNumber; h != nil && list.Number.Cmp(h) < 0 {
			t.Fatalf("replay: used CRL number %v after %v was seen", list.Number, h)
		}
		if !down {
			after, err := readCRLState(stateDir)
			if err != nil || after.highestNumber == nil || after.highestNumber.Cmp(list.Number) < 0 {
				t.Fatalf("state after using CRL %v: %+v (%v)", list.Number, after, err)
			}
		}
	})
}
