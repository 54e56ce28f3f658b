package update

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/dockertest"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/httpclient"
	"github.com/radarpod/radarpod/internal/release"
	"github.com/radarpod/radarpod/internal/update/verify"
)

// TestEngineAgentCannotReachTheUpdaterState runs the pod as
// docker-compose.yml deploys it — the updater in its container with the
// file's mounts — and attacks the updater's state from inside the agent's
// container (its uid, its mounts): rmdir the directory where the compose
// file used to mount the updater's state volume inside the agent's data
// volume (which, since Linux 3.18, detaches that mount in the updater's
// namespace too), recreate it and plant the CRL state of an older,
// validly signed CRL that does not yet revoke a leaked signer. With the
// CRL host then down, the updater must still refuse that signer's image
// from its own cached CRL, its state volume must be untouched, and a
// legitimate signed update must still install.
func TestEngineAgentCannotReachTheUpdaterState(t *testing.T) {
	t.Parallel()
	p := dockertest.NewPod(t)
	p.RunAgent(p.Release("1.0.0", nil))
	p.StartUpdater()

	// 1. A legitimate update: the updater fetches the CRL (no revocation
	// yet) and keeps it.
	p.Release("2.0.0", nil)
	p.Request("2.0.0")
	if st := p.WaitOutcome("2.0.0"); st.State != handoff.StateSucceeded {
		t.Fatalf("2.0.0: %+v", st)
	}
	agentID, _ := p.Agent()
	// Every CRL ever published is public: the agent can keep this one.
	oldCRL := fetchCRL(t, p.PKI.CRL.URL(), p.PKI.CRL.Client())

	// 2. A signer leaks; the CRL revokes it; its image is refused.
	leaked := p.PKI.IssueSigner(release.SignerOptions{CommonName: "Leaked Signer", CRLURL: p.PKI.CRL.URL()})
	p.Release("3.0.0", leaked)
	p.PKI.Revoke(leaked)
	p.Request("3.0.0")
	if st := p.WaitOutcome("3.0.0"); st.State != handoff.StateRefused || !strings.HasPrefix(st.Reason, verify.CodeRevoked+":") {
		t.Fatalf("3.0.0 by the revoked signer: %+v", st)
	}
	before := p.StateSnapshot()
	if _, ok := before[verify.CRLStateFile]; !ok {
		t.Fatalf("no CRL state in the updater's state volume: %v", before)
	}

	// 3. The attack, from inside the agent's container.
	legacy := "/data/" + legacyDir
	did, out := p.Attack(nil, "rmdir", legacy)
	t.Logf("agent: %s (done: %v)", out, did)
	did, out = p.Attack(nil, "mkdir", legacy)
	t.Logf("agent: %s (done: %v)", out, did)
	forged, err := json.Marshal(map[string]any{
		"url": p.PKI.CRL.URL(), "highest_number": oldCRL.Number.String(), "crl": oldCRL.Raw, "fetched_at": time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if did, out := p.Attack(forged, "write", legacy+"/"+verify.CRLStateFile); !did {
		t.Fatalf("the agent could not write its own volume: %s", out)
	}

	// 4. The CRL host goes down; the leaked signer's next image comes.
	p.PKI.CRL.Fail(http.StatusServiceUnavailable)
	p.Release("3.0.1", leaked)
	p.Request("3.0.1")
	st := p.WaitOutcome("3.0.1")
	if st.State != handoff.StateRefused || !strings.HasPrefix(st.Reason, verify.CodeRevoked+":") {
		t.Errorf("3.0.1 by the revoked signer, CRL host down, after the attack: %s %q; want refused %s", st.State, st.Reason, verify.CodeRevoked)
	}
	if id, v := p.Agent(); id != agentID || v != "2.0.0" {
		t.Fatalf("the agent is now %s %s: the revoked signer's image was installed", id[:12], v)
	}
	after := p.StateSnapshot()
	if !maps.Equal(before, after) {
		t.Errorf("the updater's state changed: %v, was %v", after, before)
	}

	// 5. The CRL host is back: a signed newer agent still installs.
	p.PKI.PublishCRL(release.CRLOptions{Validity: 24 * time.Hour})
	p.Release("4.0.0", nil)
	p.Request("4.0.0")
	if st := p.WaitOutcome("4.0.0"); st.State != handoff.StateSucceeded {
		t.Fatalf("4.0.0 after the attack: %+v", st)
	}
	if _, v := p.Agent(); v != "4.0.0" {
		t.Fatalf("agent runs %s, want 4.0.0", v)
	}
}

// fetchCRL downloads and parses the published CRL, as anyone can.
func fetchCRL(t *testing.T, url string, client *http.Client) *x509.RevocationList {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := httpclient.ReadLimited(resp.Body, verify.MaxCRLSize)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(body)
	if blk == nil {
		t.Fatalf("CRL is not PEM: %q", body)
	}
	list, err := x509.ParseRevocationList(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return list
}
