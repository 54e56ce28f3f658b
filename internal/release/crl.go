package release

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"path/filepath"
	"sort"
	"time"

	"github.com/radarpod/radarpod/internal/atomicfile"
)

// DefaultCRLValidity is how long a CRL stays current. Pods refuse installs
// once it lapses, so it must be re-issued well within this (see
// deploy/pki/README.md); short enough that a revocation cannot be hidden for
// long by replaying an older, still current CRL to a pod that never saw the
// newer one.
const DefaultCRLValidity = 7 * 24 * time.Hour

// crlState is kept beside the root key: the CRL number must grow across
// issues (pods refuse a lower one as a replay) and revocations accumulate.
type crlState struct {
	Number  string         `json:"number"` // decimal; the last number issued
	Revoked []revokedEntry `json:"revoked"`
}

type revokedEntry struct {
	Serial    string    `json:"serial"` // hex, as FormatSerial
	RevokedAt time.Time `json:"revoked_at"`
}

// CRLOptions describe one CRL issue.
type CRLOptions struct {
	// Revoke adds serials to the accumulated revocations (already revoked
	// ones keep their original revocation time).
	Revoke []*big.Int
	// Validity is nextUpdate − thisUpdate; default DefaultCRLValidity.
	Validity time.Duration
	// ThisUpdate defaults to now; tests back-date it to make stale CRLs.
	ThisUpdate time.Time
}

// CRL is an issued CRL.
type CRL struct {
	PEM        []byte
	Number     *big.Int
	ThisUpdate time.Time
	NextUpdate time.Time
	Revoked    []string // hex serials
}

// IssueCRL signs a new CRL with the root key: cRLNumber = previous + 1,
// every serial ever revoked plus opts.Revoke. The state is saved before the
// CRL is returned, so a number is never issued twice.
func (ca *CA) IssueCRL(o CRLOptions) (*CRL, error) {
	if o.Validity <= 0 {
		o.Validity = DefaultCRLValidity
	}
	if o.ThisUpdate.IsZero() {
		o.ThisUpdate = time.Now()
	}
	statePath := filepath.Join(ca.Dir, CRLStateFile)
	var st crlState
	if err := atomicfile.ReadJSON(statePath, &st); err != nil && !isNotExist(err) {
		return nil, fmt.Errorf("issue CRL: %w", err)
	}
	number := big.NewInt(0)
	if st.Number != "" {
		if _, ok := number.SetString(st.Number, 10); !ok {
			return nil, fmt.Errorf("issue CRL: %s: bad number %q", statePath, st.Number)
		}
	}
	number.Add(number, big.NewInt(1))

	seen := map[string]bool{}
	for _, e := range st.Revoked {
		seen[e.Serial] = true
	}
	for _, s := range o.Revoke {
		hex := FormatSerial(s)
		if !seen[hex] {
			seen[hex] = true
			st.Revoked = append(st.Revoked, revokedEntry{Serial: hex, RevokedAt: o.ThisUpdate.UTC()})
		}
	}
	sort.Slice(st.Revoked, func(i, j int) bool { return st.Revoked[i].Serial < st.Revoked[j].Serial })

	tmpl := &x509.RevocationList{
		Number:     number,
		ThisUpdate: o.ThisUpdate,
		NextUpdate: o.ThisUpdate.Add(o.Validity),
	}
	var serials []string
	for _, e := range st.Revoked {
		n, err := ParseSerial(e.Serial)
		if err != nil {
			return nil, fmt.Errorf("issue CRL: %s: %w", statePath, err)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber:   n,
			RevocationTime: e.RevokedAt,
		})
		serials = append(serials, e.Serial)
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue CRL: %w", err)
	}
	st.Number = number.String()
	if err := atomicfile.WriteJSON(statePath, st, 0o600); err != nil {
		return nil, fmt.Errorf("issue CRL: save state: %w", err)
	}
	return &CRL{
		PEM:        pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}),
		Number:     number,
		ThisUpdate: tmpl.ThisUpdate,
		NextUpdate: tmpl.NextUpdate,
		Revoked:    serials,
	}, nil
}
