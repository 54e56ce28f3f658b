// Package releasetest gives tests a complete release world: a root CA, a
// code-signing certificate whose CRL distribution point is a loopback HTTPS
// CRL server (the stand-in for the GCS bucket), and helpers to sign images
// and publish, revoke or break CRLs. The updater's verifier, configured with
// RootPEM, CRL.URL() and CRL.Client(), accepts what Sign produces.
package releasetest

import (
	"context"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/release"
)

// CRLPath is where the CRL server serves the CRL, as the bucket does.
const CRLPath = "/radar.exactlylabs.com/rootCRL.crl.pem"

// CRLServer is a loopback HTTPS server for one CRL object.
type CRLServer struct {
	srv        *httptest.Server
	mu         sync.Mutex
	body       []byte
	status     int
	redirectTo string
	requests   int
}

// StartCRLServer starts a CRL server that answers 404 until Serve is
// called; it stops when the test ends.
func StartCRLServer(t testing.TB) *CRLServer {
	t.Helper()
	c := &CRLServer{status: http.StatusNotFound}
	c.srv = httptest.NewTLSServer(http.HandlerFunc(c.handle))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *CRLServer) handle(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	switch {
	case r.URL.Path != CRLPath:
		http.NotFound(w, r)
	case c.redirectTo != "":
		http.Redirect(w, r, c.redirectTo, http.StatusFound)
	case c.status != http.StatusOK:
		http.Error(w, http.StatusText(c.status), c.status)
	default:
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(c.body)
	}
}

// URL is the CRL's URL (RADAR_CRL_URL).
func (c *CRLServer) URL() string { return c.srv.URL + CRLPath }

// Client trusts the server's certificate (Config.HTTPClient of the verifier).
func (c *CRLServer) Client() *http.Client { return c.srv.Client() }

// Server is the underlying test server (its Certificate, or Close to make
// the URL unreachable).
func (c *CRLServer) Server() *httptest.Server { return c.srv }

// Serve publishes body (any bytes: a CRL, garbage, an oversized blob).
func (c *CRLServer) Serve(body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.body, c.status, c.redirectTo = body, http.StatusOK, ""
}

// Fail makes the URL answer with status, as a bucket outage would.
func (c *CRLServer) Fail(status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status = status
}

// Redirect makes the URL redirect to another one.
func (c *CRLServer) Redirect(to string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.redirectTo = to
}

// Requests counts the requests the server has answered.
func (c *CRLServer) Requests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests
}

// PKI is a root CA with one signer and a CRL server publishing a current
// CRL of that root.
type PKI struct {
	t       testing.TB
	CA      *release.CA
	Signer  *release.Identity
	CRL     *CRLServer
	RootPEM []byte // what RADAR_ROOT_CA_FILE holds
}

// NewPKI creates the root (in a temporary directory), a signer whose CRL
// distribution point is the CRL server, and publishes a CRL valid for a day.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	ca, err := release.InitCA(t.TempDir(), release.CAOptions{CommonName: "Radar Pod Test Root"})
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{t: t, CA: ca, CRL: StartCRLServer(t), RootPEM: release.EncodeCerts(ca.Cert)}
	p.Signer = p.IssueSigner(release.SignerOptions{CommonName: "Radar Pod Test Signer", CRLURL: p.CRL.URL()})
	p.PublishCRL(release.CRLOptions{Validity: 24 * time.Hour})
	return p
}

// IssueSigner issues another signing certificate from the root.
func (p *PKI) IssueSigner(o release.SignerOptions) *release.Identity {
	p.t.Helper()
	id, err := p.CA.IssueSigner(o)
	if err != nil {
		p.t.Fatal(err)
	}
	return id
}

// IssueCRL issues the root's next CRL without publishing it.
func (p *PKI) IssueCRL(o release.CRLOptions) *release.CRL {
	p.t.Helper()
	c, err := p.CA.IssueCRL(o)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// PublishCRL issues the root's next CRL and serves it.
func (p *PKI) PublishCRL(o release.CRLOptions) *release.CRL {
	p.t.Helper()
	c := p.IssueCRL(o)
	p.CRL.Serve(c.PEM)
	return c
}

// Revoke publishes a new CRL that revokes the given signers (in addition to
// every earlier revocation).
func (p *PKI) Revoke(ids ...*release.Identity) *release.CRL {
	p.t.Helper()
	var serials []*big.Int
	for _, id := range ids {
		serials = append(serials, id.Leaf().SerialNumber)
	}
	return p.PublishCRL(release.CRLOptions{Revoke: serials, Validity: 24 * time.Hour})
}

// Sign signs the image ref points to with id (nil means p.Signer).
func (p *PKI) Sign(ctx context.Context, id *release.Identity, ref string) release.Signed {
	p.t.Helper()
	if id == nil {
		id = p.Signer
	}
	s, err := release.Sign(ctx, id, ref, release.SignOptions{})
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

// ForeignCA creates another root with the same subject as p's: signers it
// issues and CRLs it signs must be refused by a verifier pinned to p.
func (p *PKI) ForeignCA() *release.CA {
	p.t.Helper()
	ca, err := release.InitCA(p.t.TempDir(), release.CAOptions{CommonName: p.CA.Cert.Subject.CommonName})
	if err != nil {
		p.t.Fatal(err)
	}
	return ca
}
