// Package release owns the release side of the update chain of trust: the
// root CA whose certificate every pod pins, the code-signing certificates it
// issues, notation signatures of agent images (stored in the registry beside
// the image) and the CRL the pods fetch before installing anything. The
// radar-sign command is a thin front end to it.
package release

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/atomicfile"
)

// File names inside a CA directory. The key never leaves the (offline)
// machine that holds the directory; only RootCertFile is distributed.
const (
	RootCertFile = "root-ca.pem"
	RootKeyFile  = "root-ca.key"
	CRLStateFile = "crl-state.json"
)

// KeyType selects the key algorithm of a new certificate. Notation accepts
// RSA 2048–4096 and EC P-256/384/521; we offer the sizes we recommend.
type KeyType string

// Supported key types.
const (
	KeyECDSAP256 KeyType = "ecdsa-p256"
	KeyECDSAP384 KeyType = "ecdsa-p384"
	KeyRSA3072   KeyType = "rsa-3072"
)

// KeyTypes lists the accepted KeyType values (for help texts).
var KeyTypes = []KeyType{KeyECDSAP256, KeyECDSAP384, KeyRSA3072}

// Certificates are back-dated by this much so that a signature made or
// checked on a machine whose clock lags slightly still falls in the validity
// window.
const backdate = 5 * time.Minute

func generateKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case KeyECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	}
	return nil, fmt.Errorf("unsupported key type %q (want one of %v)", t, KeyTypes)
}

// randomSerial returns a positive 127-bit serial: unique without a ledger,
// and short enough for every X.509 parser (RFC 5280 caps serials at 20 bytes).
func randomSerial() (*big.Int, error) {
	max := new(big.Int).Lsh(big.NewInt(1), 127)
	n, err := rand.Int(rand.Reader, max)
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// FormatSerial prints a certificate serial the way operators see it in
// `openssl x509 -serial` (hex), which is also what `radar-sign crl --revoke`
// and the updater's status file use.
func FormatSerial(n *big.Int) string { return fmt.Sprintf("%x", n) }

// ParseSerial reads a hex serial as FormatSerial or openssl print it,
// tolerating a 0x prefix and colons.
func ParseSerial(s string) (*big.Int, error) {
	clean := strings.ToLower(strings.TrimSpace(s))
	clean = strings.TrimPrefix(clean, "0x")
	clean = strings.ReplaceAll(clean, ":", "")
	n, ok := new(big.Int).SetString(clean, 16)
	if !ok || clean == "" || n.Sign() <= 0 {
		return nil, fmt.Errorf("serial %q: want a positive hexadecimal number", s)
	}
	return n, nil
}

// CA is a loaded root CA: its certificate and private key.
type CA struct {
	Dir  string
	Cert *x509.Certificate
	Key  crypto.Signer
}

// CAOptions describe a new root CA.
type CAOptions struct {
	CommonName string        // default "Radar Pod Release Root CA"
	KeyType    KeyType       // default ecdsa-p256
	Validity   time.Duration // default 10 years
	Now        time.Time     // default time.Now (tests)
}

// InitCA creates a root CA in dir (created 0700). It refuses to overwrite an
// existing root key: losing it strands every pod that pins the old root.
func InitCA(dir string, o CAOptions) (*CA, error) {
	if o.CommonName == "" {
		o.CommonName = "Radar Pod Release Root CA"
	}
	if o.Validity <= 0 {
		o.Validity = 10 * 365 * 24 * time.Hour
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	keyPath := filepath.Join(dir, RootKeyFile)
	if _, err := os.Stat(keyPath); err == nil {
		return nil, fmt.Errorf("init CA: %s already exists; refusing to replace a root key", keyPath)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	key, err := generateKey(o.KeyType)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.CommonName, Organization: []string{"Radar Pod"}},
		NotBefore:             o.Now.Add(-backdate),
		NotAfter:              o.Now.Add(o.Validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// The root signs code-signing certificates directly; a path length
		// of zero makes any intermediate it did not mean to create useless.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("init CA: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	// Certificate first: a crash in between leaves no key, so InitCA can be
	// re-run; a key without its certificate would block it.
	if err := atomicfile.Write(filepath.Join(dir, RootCertFile), EncodeCerts(cert), 0o644); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	return &CA{Dir: dir, Cert: cert, Key: key}, nil
}

// LoadCA reads the root CA from dir.
func LoadCA(dir string) (*CA, error) {
	certs, err := ReadCertsFile(filepath.Join(dir, RootCertFile))
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	key, err := ReadKeyFile(filepath.Join(dir, RootKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	if err := keyMatches(certs[0], key); err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	return &CA{Dir: dir, Cert: certs[0], Key: key}, nil
}

// SignerOptions describe a new code-signing certificate.
type SignerOptions struct {
	CommonName string        // default "Radar Pod release signer"
	KeyType    KeyType       // default ecdsa-p256
	Validity   time.Duration // default 1 year, capped at the root's expiry
	// CRLURL is the CRL distribution point pods check; required unless
	// OmitCRLDistributionPoint is set.
	CRLURL string
	// OmitCRLDistributionPoint issues a certificate without a CRL
	// distribution point. Every pod refuses its signatures; it exists so that
	// tests can prove that.
	OmitCRLDistributionPoint bool
	Now                      time.Time // default time.Now (tests)
}

// Identity is what signs: a private key and its chain (leaf first, root
// last, as notation wants it in the signature).
type Identity struct {
	Key   crypto.Signer
	Chain []*x509.Certificate
}

// Leaf is the code-signing certificate of the identity.
func (id *Identity) Leaf() *x509.Certificate { return id.Chain[0] }

// IssueSigner issues a code-signing certificate: critical KeyUsage
// digitalSignature only, ExtKeyUsage codeSigning, and the CRL distribution
// point the pods fetch.
func (ca *CA) IssueSigner(o SignerOptions) (*Identity, error) {
	if o.CommonName == "" {
		o.CommonName = "Radar Pod release signer"
	}
	if o.Validity <= 0 {
		o.Validity = 365 * 24 * time.Hour
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	var cdp []string
	switch {
	case o.OmitCRLDistributionPoint:
	case o.CRLURL == "":
		return nil, errors.New("issue signer: a CRL URL is required (pods refuse signers without one)")
	default:
		cdp = []string{o.CRLURL}
	}
	notAfter := o.Now.Add(o.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	key, err := generateKey(o.KeyType)
	if err != nil {
		return nil, fmt.Errorf("issue signer: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("issue signer: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.CommonName, Organization: []string{"Radar Pod"}},
		NotBefore:             o.Now.Add(-backdate),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		IsCA:                  false,
		// crypto/x509 always marks KeyUsage critical, as notation requires.
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		CRLDistributionPoints: cdp,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue signer: create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue signer: %w", err)
	}
	return &Identity{Key: key, Chain: []*x509.Certificate{leaf, ca.Cert}}, nil
}

// WriteIdentity writes the chain (leaf first) to certPath and the key to
// keyPath (mode 0600). It refuses to overwrite an existing key file.
func WriteIdentity(id *Identity, certPath, keyPath string) error {
	if _, err := os.Stat(keyPath); err == nil {
		return fmt.Errorf("write signer: %s already exists", keyPath)
	}
	keyPEM, err := encodeKey(id.Key)
	if err != nil {
		return fmt.Errorf("write signer: %w", err)
	}
	if err := atomicfile.Write(certPath, EncodeCerts(id.Chain...), 0o644); err != nil {
		return fmt.Errorf("write signer: %w", err)
	}
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("write signer: %w", err)
	}
	return nil
}

// LoadIdentity reads a signer written by WriteIdentity.
func LoadIdentity(certPath, keyPath string) (*Identity, error) {
	chain, err := ReadCertsFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("load signer: %w", err)
	}
	if len(chain) < 2 {
		return nil, fmt.Errorf("load signer: %s must hold the signing certificate followed by the root", certPath)
	}
	key, err := ReadKeyFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load signer: %w", err)
	}
	if err := keyMatches(chain[0], key); err != nil {
		return nil, fmt.Errorf("load signer: %w", err)
	}
	return &Identity{Key: key, Chain: chain}, nil
}

// EncodeCerts PEM-encodes certificates in order.
func EncodeCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// ParseCerts reads every CERTIFICATE block of a PEM bundle.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// ReadCertsFile reads a PEM certificate bundle.
func ReadCertsFile(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCerts(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs, nil
}

// ReadKeyFile reads a PKCS#8 (or SEC1/PKCS#1) PEM private key and warns
// through its error if the file is readable by others.
func ReadKeyFile(path string) (crypto.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: private key is accessible by group or others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var key any
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("%s: unexpected PEM block %q", path, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: unsupported key type %T", path, key)
	}
	return s, nil
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

type publicKeyEqualer interface{ Equal(crypto.PublicKey) bool }

func keyMatches(cert *x509.Certificate, key crypto.Signer) error {
	pub, ok := key.Public().(publicKeyEqualer)
	if !ok || !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("private key does not belong to certificate %q", cert.Subject)
	}
	return nil
}

// isNotExist reports a missing file through any wrapping.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
