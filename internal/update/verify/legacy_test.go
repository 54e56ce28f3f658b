package verify_test

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/registrytest"
	"github.com/radarpod/radarpod/internal/release"
	"github.com/radarpod/radarpod/internal/update/verify"
)

// legacyState is a crl-state.json as an older updater wrote it, or as the
// agent could forge it: any URL, any highest number, any CRL.
func legacyState(t *testing.T, url, highest string, crl *release.CRL) []byte {
	t.Helper()
	st := map[string]any{"url": url, "highest_number": highest, "fetched_at": time.Now().UTC()}
	if crl != nil {
		blk, _ := pem.Decode(crl.PEM)
		st["crl"] = blk.Bytes
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type savedState struct {
	URL           string `json:"url"`
	HighestNumber string `json:"highest_number"`
	CRL           []byte `json:"crl"`
}

// The state an older updater kept in the agent's volume is taken over only
// as far as it cannot weaken the updater: the highest CRL number moves
// only up and only to a number a root-signed CRL carries, and a cached CRL
// is taken only when it is newer than a number we hold. Then the CRL URL
// goes down and a signer revoked in the newest CRL is tried: it must be
// refused whenever the pod had seen that CRL, whatever the legacy file said.
func TestMergeLegacyCRLState(t *testing.T) {
	host := registrytest.StartInProcess(t)
	f := newFixture(t, host)
	url := f.crl.URL()
	crl1 := f.pki.IssueCRL(release.CRLOptions{Validity: 24 * time.Hour}) // before the revocation: current, but old
	f.pushSigned("1.1.0")
	leaked := f.issueSigner(f.ca, release.SignerOptions{CommonName: "Leaked Signer", CRLURL: url})
	f.push(f.repo+":1.2.0", agentSpec("1.2.0", "radar-agent", multiArch...))
	f.sign(leaked, f.repo+":1.2.0")
	crl2 := f.pki.Revoke(leaked)
	crl3 := f.pki.IssueCRL(release.CRLOptions{Validity: 24 * time.Hour}) // newer still, never published
	foreign := f.issueCRL(f.foreignCA(), release.CRLOptions{Validity: 24 * time.Hour})

	for _, tc := range []struct {
		name string
		// own is what the state directory holds (nil: nothing, a fresh
		// volume); legacy what the old location holds.
		own, legacy []byte
		// highest and cached (CRL number, "" = none) after the merge.
		highest, cached string
		// downRefusal is the refusal of the revoked signer's 1.2.0 once
		// the CRL URL is down.
		downRefusal string
	}{
		{name: "genuine legacy state, fresh volume: the number is taken, not the CRL",
			legacy: legacyState(t, url, crl2.Number.String(), crl2), highest: crl2.Number.String(), downRefusal: verify.CodeCRLUnreachable},
		{name: "planted old CRL, fresh volume: its number only, never the cache",
			legacy: legacyState(t, url, crl1.Number.String(), crl1), highest: crl1.Number.String(), downRefusal: verify.CodeCRLUnreachable},
		{name: "planted old CRL under ours: ours kept",
			own: legacyState(t, url, crl2.Number.String(), crl2), legacy: legacyState(t, url, crl1.Number.String(), crl1),
			highest: crl2.Number.String(), cached: crl2.Number.String(), downRefusal: verify.CodeRevoked},
		{name: "forged highest number: only a signed CRL's number counts",
			own: legacyState(t, url, crl2.Number.String(), crl2), legacy: legacyState(t, url, "99999999999999999999", crl1),
			highest: crl2.Number.String(), cached: crl2.Number.String(), downRefusal: verify.CodeRevoked},
		{name: "forged number without a CRL: ignored",
			legacy: legacyState(t, url, "99999999999999999999", nil), downRefusal: verify.CodeCRLUnreachable},
		{name: "CRL of a foreign root: ignored",
			own: legacyState(t, url, crl2.Number.String(), crl2), legacy: legacyState(t, url, "50", foreign),
			highest: crl2.Number.String(), cached: crl2.Number.String(), downRefusal: verify.CodeRevoked},
		{name: "newer genuine CRL than ours: taken as the cache",
			own: legacyState(t, url, crl1.Number.String(), crl1), legacy: legacyState(t, url, crl3.Number.String(), crl3),
			highest: crl3.Number.String(), cached: crl3.Number.String(), downRefusal: verify.CodeRevoked},
		{name: "newer genuine CRL from another URL: number only",
			own: legacyState(t, url, crl1.Number.String(), crl1), legacy: legacyState(t, "https://elsewhere.example/crl.pem", crl3.Number.String(), crl3),
			highest: crl3.Number.String(), downRefusal: verify.CodeCRLUnreachable},
		{name: "our cache below our highest number (a raised mark): not used",
			own: legacyState(t, url, crl3.Number.String(), crl1), legacy: nil,
			highest: crl3.Number.String(), cached: crl1.Number.String(), downRefusal: verify.CodeCRLUnreachable},
		{name: "garbage", own: legacyState(t, url, crl2.Number.String(), crl2), legacy: []byte(`{"highest_number": "7", "crl": "AAAA"`),
			highest: crl2.Number.String(), cached: crl2.Number.String(), downRefusal: verify.CodeRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.stateDir = t.TempDir()
			path := filepath.Join(f.stateDir, verify.CRLStateFile)
			if tc.own != nil {
				if err := os.WriteFile(path, tc.own, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg := f.config()
			cfg.HTTPClient = &http.Client{Transport: failing{}} // the CRL URL is down
			v, err := verify.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			note, err := v.MergeLegacyCRLState(tc.legacy)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("merge: %s", note)
			b, err := os.ReadFile(path)
			var got savedState
			if err == nil {
				err = json.Unmarshal(b, &got)
			}
			if tc.highest == "" {
				if tc.own == nil && !os.IsNotExist(err) {
					t.Fatalf("a state was written from nothing: %s", b)
				}
			} else if err != nil || got.HighestNumber != tc.highest {
				t.Fatalf("highest number after the merge: %+v (%v), want %s", got, err, tc.highest)
			}
			if tc.own != nil && tc.highest == numberIn(t, tc.own) && !bytes.Equal(b, tc.own) {
				t.Errorf("our state was rewritten although nothing was taken:\n%s", b)
			}
			if n := cachedIn(t, got.CRL); n != tc.cached {
				t.Errorf("cached CRL number %q, want %q", n, tc.cached)
			}
			_, err = v.Verify(t.Context(), "1.2.0", "1.1.0")
			checkOutcome(t, verify.Verified{}, err, refused(tc.downRefusal))
		})
	}
}

func numberIn(t *testing.T, state []byte) string {
	t.Helper()
	var s savedState
	if err := json.Unmarshal(state, &s); err != nil {
		t.Fatal(err)
	}
	return s.HighestNumber
}

// cachedIn is the number of the cached CRL (DER), "" for none.
func cachedIn(t *testing.T, der []byte) string {
	t.Helper()
	if len(der) == 0 {
		return ""
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("cached CRL: %v", err)
	}
	return list.Number.String()
}

// failing is a CRL host that cannot be reached.
type failing struct{}

func (failing) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("dial tcp: connection refused (the CRL URL is down)")
}
