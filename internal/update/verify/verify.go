// Package verify owns everything the updater checks before it pulls an agent
// image: the announced tag resolved to a digest, a notation signature over
// that digest chaining to the pinned root under a strict trust policy, the
// signer checked against the release CRL (fetched over HTTPS, verified,
// current, never older than one seen before), the signed repository, and
// the component and version labels of the signed image config. Nothing that
// depends on the time (CRL currency, certificate validity) is decided on a
// clock the process's wallclock does not trust: that is a wait
// (wallclock.ErrUntrusted), never a refusal.
package verify

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"runtime"
	"strings"

	"github.com/notaryproject/notation-core-go/revocation"
	"github.com/notaryproject/notation-core-go/revocation/purpose"
	"github.com/notaryproject/notation-go"
	"github.com/notaryproject/notation-go/registry"
	"github.com/notaryproject/notation-go/verifier"
	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"github.com/notaryproject/notation-go/verifier/truststore"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/mod/semver"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/dockerauth"
	"github.com/radarpod/radarpod/internal/httpclient"
	"github.com/radarpod/radarpod/internal/update/statedir"
	"github.com/radarpod/radarpod/internal/update/verify/registryclient"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// MetadataRepository is the signature user-metadata key naming the
// repository an image was signed for. radar-sign writes it; the verifier
// requires it to equal Config.Repository, because a notation signature
// covers only the digest and would otherwise follow a copy of the image into
// any repository.
const MetadataRepository = "io.radarpod.repository"

// Labels of the image config that the verifier binds to.
const (
	LabelTitle   = ocispec.AnnotationTitle   // org.opencontainers.image.title
	LabelVersion = ocispec.AnnotationVersion // org.opencontainers.image.version
)

const (
	// maxSignatureAttempts bounds the signatures examined per image.
	maxSignatureAttempts = 50
	// maxMetadataSize caps manifests, indexes and image configs.
	maxMetadataSize = 4 << 20
	trustStoreName  = "radar-root"
)

// Config is what the verifier trusts and where it looks.
type Config struct {
	Repository string // RADAR_AGENT_IMAGE, e.g. 127.0.0.1:5000/radar-agent
	Component  string // required org.opencontainers.image.title, e.g. "radar-agent"
	RootCAPEM  []byte // pinned root CA (RADAR_ROOT_CA_FILE contents); exactly one certificate
	CRLURL     string // RADAR_CRL_URL; must be https
	StateDir   string // CRL cache and highest cRLNumber seen (created 0700)
	// State is StateDir already opened (statedir.Open), so that the
	// verifier and the updater share one pinned directory; nil opens
	// StateDir.
	State *statedir.Dir
	// HTTPClient fetches the CRL; nil means httpclient.New with the
	// updater's user agent.
	HTTPClient *http.Client
	// RegistryHTTPClient carries registry requests; nil means
	// httpclient.New with the updater's user agent. (Tests give it a
	// private CA, or a skewed TLS clock.)
	RegistryHTTPClient *http.Client
	// Clock judges the system clock, learning from the Date of every
	// registry and CRL answer; nil means the real clocks. Build it with
	// AuthenticatedDatesOnly: only a Date received over TLS may vouch for
	// the clock the certificates are judged by.
	Clock *wallclock.Clock
	// Auth are the registry credentials, the same the engine pulls with
	// (nil: anonymous).
	Auth *dockerauth.Auth
	// Platform selects the manifest of a multi-arch index whose config
	// labels are read; zero means this process's platform.
	Platform ocispec.Platform
	Logger   *slog.Logger // nil discards
}

// Verifier checks announced images. It is safe for sequential use; the
// updater verifies one announcement at a time.
type Verifier struct {
	repository string // canonical
	component  string
	root       *x509.Certificate
	crlURL     string
	crl        *crlSource
	registry   *http.Client
	auth       *dockerauth.Auth
	platform   ocispec.Platform
	clock      *wallclock.Clock
	log        *slog.Logger
}

// Verified is an image that passed every check; pull Reference and then
// confirm with CheckPulled.
type Verified struct {
	Reference     string // <repository>@sha256:… (the signed index or manifest)
	Digest        string // sha256:…
	Version       string // org.opencontainers.image.version of the image
	Title         string // org.opencontainers.image.title of the image
	SignerSubject string // subject of the signing certificate
	SignerSerial  string // its serial, hex as in `openssl x509 -serial`
}

// New validates cfg and returns a Verifier. Errors are configuration errors.
func New(cfg Config) (*Verifier, error) {
	repo, err := registryclient.Normalize(cfg.Repository)
	if err != nil {
		return nil, fmt.Errorf("verifier: %w", err)
	}
	if strings.TrimSpace(cfg.Component) == "" {
		return nil, errors.New("verifier: component must not be empty")
	}
	root, err := parseRoot(cfg.RootCAPEM)
	if err != nil {
		return nil, fmt.Errorf("verifier: root CA: %w", err)
	}
	u, err := url.Parse(cfg.CRLURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("verifier: CRL URL %q must be an https URL", cfg.CRLURL)
	}
	state := cfg.State
	if state == nil {
		if cfg.StateDir == "" {
			return nil, errors.New("verifier: state directory must not be empty")
		}
		if state, err = statedir.Open(cfg.StateDir); err != nil {
			return nil, fmt.Errorf("verifier: %w", err)
		}
	}
	v := &Verifier{
		repository: repo,
		component:  cfg.Component,
		root:       root,
		crlURL:     cfg.CRLURL,
		auth:       cfg.Auth,
		platform:   cfg.Platform,
		clock:      cfg.Clock,
		log:        cfg.Logger,
	}
	if v.clock == nil {
		v.clock = wallclock.New(wallclock.Options{AuthenticatedDatesOnly: true})
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.platform.OS == "" {
		v.platform = DefaultPlatform()
	}
	crlClient := cfg.HTTPClient
	if crlClient == nil {
		crlClient = httpclient.New(httpclient.Options{UserAgent: buildinfo.UpdaterUserAgent(), Timeout: crlFetchTimeout})
	}
	v.registry = cfg.RegistryHTTPClient
	if v.registry == nil {
		v.registry = httpclient.New(httpclient.Options{UserAgent: buildinfo.UpdaterUserAgent()})
	}
	v.registry = httpclient.ObserveDates(v.registry, v.clock)
	crlClient = httpclient.ObserveDates(crlClient, v.clock)
	v.crl = newCRLSource(cfg.CRLURL, crlClient, root, state, v.clock, v.log)
	return v, nil
}

func parseRoot(pemBytes []byte) (*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := pemBytes
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("want exactly one PEM certificate, found %d", len(certs))
	}
	c := certs[0]
	if !c.BasicConstraintsValid || !c.IsCA {
		return nil, fmt.Errorf("%q is not a CA certificate", c.Subject)
	}
	if !bytes.Equal(c.RawIssuer, c.RawSubject) || c.CheckSignatureFrom(c) != nil {
		return nil, fmt.Errorf("%q is not a self-signed root", c.Subject)
	}
	return c, nil
}

// DefaultPlatform is the platform of this process (for arm, the GOARM
// variant it was built for).
func DefaultPlatform() ocispec.Platform {
	p := ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if v := buildinfo.GOARM(); v != "" {
		p.Variant = "v" + v
	}
	return p
}

// Verify resolves <Repository>:<version>, verifies everything the design
// requires, and returns what to pull. The error is a *Refusal (do not
// install; retry later), a *wallclock.UntrustedError (errors.Is
// wallclock.ErrUntrusted: the clock cannot be trusted, so nothing that
// depends on the time was decided; wait for time sync and retry), or
// anything else: transient (registry or network trouble), retry.
//
// The clock is judged where the first decision needs it, once the
// registry and the CRL host have answered: their Date headers are what a
// pod whose kernel is not synchronized learns the time from. Decisions
// that need no clock (the version policy, a tag the registry does not
// have, a CRL that cannot be had at all) are made whatever the clock says.
func (v *Verifier) Verify(ctx context.Context, version, runningVersion string) (Verified, error) {
	want, ok := canonicalVersion(version)
	if !ok {
		return Verified{}, refuse(CodeInvalidVersion, "announced version %q is not semver", version)
	}
	running, ok := canonicalVersion(runningVersion)
	if !ok {
		return Verified{}, refuse(CodeInvalidVersion, "running version %q is not semver", runningVersion)
	}
	if semver.Compare(want, running) <= 0 {
		return Verified{}, refuse(CodeDowngrade, "announced version %s is not newer than running %s", version, runningVersion)
	}
	tag := strings.TrimPrefix(version, "v")

	repo, err := registryclient.Repository(v.repository, v.registry, v.auth)
	if err != nil {
		return Verified{}, fmt.Errorf("verify: %w", err)
	}
	desc, err := repo.Resolve(ctx, tag)
	if err != nil {
		switch {
		case errors.Is(err, errdef.ErrNotFound):
			return Verified{}, &Refusal{Code: CodeNotFound, Err: fmt.Errorf("resolve: %w", err)}
		case errors.Is(err, errdef.ErrInvalidReference):
			return Verified{}, &Refusal{Code: CodeInvalidVersion, Err: fmt.Errorf("resolve: %w", err)}
		}
		// A pod booted at a saved time fails the registry's TLS handshake
		// ("expired or not yet valid") before any answer: the clock's
		// fault, not the network's, until the clock is trusted.
		if cerr := v.clock.CertificateTimeError(err, "the registry "+registryHost(v.repository)); cerr != nil {
			return Verified{}, cerr
		}
		return Verified{}, fmt.Errorf("resolve %s:%s: %w", v.repository, tag, err)
	}
	if !isIndex(desc.MediaType) && !isManifest(desc.MediaType) {
		return Verified{}, refuse(CodeInvalidImage, "%s:%s is a %q, not an image", v.repository, tag, desc.MediaType)
	}

	fetcher := &crlFetcher{src: v.crl}
	// Fetch up front: a CRL problem is reported as such, whatever the
	// signatures turn out to be; notation's revocation check reuses it.
	// This is also where the clock is judged (crlSource.current): from
	// here on, CRL currency and certificate validity are decided by it.
	if _, err := fetcher.Fetch(ctx, v.crlURL); err != nil {
		return Verified{}, err
	}
	outcome, err := v.verifySignatures(ctx, repo, desc, fetcher)
	if err != nil {
		return Verified{}, err
	}
	leaf := outcome.EnvelopeContent.SignerInfo.CertificateChain[0]

	labels, err := v.readLabels(ctx, repo, desc)
	if err != nil {
		return Verified{}, err
	}
	title := labels[LabelTitle]
	if title != v.component {
		return Verified{}, refuse(CodeWrongComponent, "image %s is %q, not %q (label %s)", desc.Digest, title, v.component, LabelTitle)
	}
	label := labels[LabelVersion]
	if strings.TrimPrefix(label, "v") != tag {
		return Verified{}, refuse(CodeVersionMismatch, "image %s has version label %q, announced %q", desc.Digest, label, version)
	}
	if lv, ok := canonicalVersion(label); !ok || semver.Compare(lv, running) <= 0 {
		return Verified{}, refuse(CodeDowngrade, "image version %q is not newer than running %s", label, runningVersion)
	}
	verified := Verified{
		Reference:     v.repository + "@" + desc.Digest.String(),
		Digest:        desc.Digest.String(),
		Version:       label,
		Title:         title,
		SignerSubject: leaf.Subject.String(),
		SignerSerial:  serialHex(leaf.SerialNumber),
	}
	v.log.Info("image verified", "reference", verified.Reference, "version", label,
		"signer", verified.SignerSubject, "signer_serial", verified.SignerSerial)
	return verified, nil
}

var errStopListing = errors.New("stop listing signatures")

// verifySignatures returns the outcome of the first signature that passes
// notation's strict verification and our own additions, or the refusal of
// the first one that does not.
func (v *Verifier) verifySignatures(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, fetcher *crlFetcher) (*notation.VerificationOutcome, error) {
	nv, err := v.notationVerifier(fetcher)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	sigRepo := registry.NewRepository(repo)
	artifact := v.repository + "@" + desc.Digest.String()
	var (
		accepted  *notation.VerificationOutcome
		refusals  []error
		fetchErrs []error
		attempts  int
	)
	err = sigRepo.ListSignatures(ctx, desc, func(sigs []ocispec.Descriptor) error {
		for _, sd := range sigs {
			if attempts >= maxSignatureAttempts {
				return errStopListing
			}
			attempts++
			blob, blobDesc, err := sigRepo.FetchSignatureBlob(ctx, sd)
			if err != nil {
				fetchErrs = append(fetchErrs, fmt.Errorf("fetch signature %s: %w", sd.Digest, err))
				continue
			}
			outcome, err := nv.Verify(ctx, desc, blob, notation.VerifierVerifyOptions{
				ArtifactReference:  artifact,
				SignatureMediaType: blobDesc.MediaType,
			})
			if err != nil {
				refusals = append(refusals, v.classify(outcome, err, fetcher))
				continue
			}
			if r := v.checkAccepted(outcome); r != nil {
				refusals = append(refusals, r)
				continue
			}
			accepted = outcome
			return errStopListing
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopListing) {
		return nil, fmt.Errorf("list signatures of %s: %w", artifact, err)
	}
	switch {
	case accepted != nil:
		return accepted, nil
	case len(refusals) > 0:
		return nil, refusals[0]
	case len(fetchErrs) > 0:
		return nil, errors.Join(fetchErrs...)
	}
	return nil, refuse(CodeUnsigned, "%s has no signature", artifact)
}

func (v *Verifier) notationVerifier(fetcher *crlFetcher) (notation.Verifier, error) {
	policy := &trustpolicy.Document{
		Version: "1.0",
		TrustPolicies: []trustpolicy.TrustPolicy{{
			Name:                  "radar-release",
			RegistryScopes:        []string{v.repository},
			SignatureVerification: trustpolicy.SignatureVerification{VerificationLevel: trustpolicy.LevelStrict.Name},
			TrustStores:           []string{string(truststore.TypeCA) + ":" + trustStoreName},
			TrustedIdentities:     []string{"*"},
		}},
	}
	// Our certificates carry no OCSP URL; should one ever appear, no
	// request leaves the pod except to the configured CRL URL.
	noOCSP := &http.Client{Transport: refuseTransport{}}
	codeSigning, err := revocation.NewWithOptions(revocation.Options{OCSPHTTPClient: noOCSP, CRLFetcher: fetcher, CertChainPurpose: purpose.CodeSigning})
	if err != nil {
		return nil, err
	}
	timestamping, err := revocation.NewWithOptions(revocation.Options{OCSPHTTPClient: noOCSP, CRLFetcher: fetcher, CertChainPurpose: purpose.Timestamping})
	if err != nil {
		return nil, err
	}
	return verifier.NewWithOptions(policy, pinnedStore{root: v.root}, nil, verifier.VerifierOptions{
		RevocationCodeSigningValidator:  codeSigning,
		RevocationTimestampingValidator: timestamping,
	})
}

// classify turns a failed notation verification into a refusal code.
func (v *Verifier) classify(outcome *notation.VerificationOutcome, err error, fetcher *crlFetcher) *Refusal {
	if outcome == nil || outcome.EnvelopeContent == nil {
		return &Refusal{Code: CodeUntrustedSignature, Err: err}
	}
	chain := outcome.EnvelopeContent.SignerInfo.CertificateChain
	for _, r := range outcome.VerificationResults {
		if r.Error == nil || r.Action != trustpolicy.ActionEnforce {
			continue
		}
		if r.Type != trustpolicy.TypeRevocation || len(chain) == 0 {
			return &Refusal{Code: CodeUntrustedSignature, Err: fmt.Errorf("%s: %w", r.Type, r.Error)}
		}
		if ref := v.checkDistributionPoint(chain[0]); ref != nil {
			return ref
		}
		for _, c := range chain[:len(chain)-1] {
			if fetcher.revoked(c.SerialNumber) {
				return refuse(CodeRevoked, "certificate %q (serial %x) is revoked: %v", c.Subject, c.SerialNumber, r.Error)
			}
		}
		return &Refusal{Code: CodeRevocationUnknown, Err: r.Error}
	}
	return &Refusal{Code: CodeUntrustedSignature, Err: err}
}

// checkAccepted adds what strict notation verification lets through.
func (v *Verifier) checkAccepted(outcome *notation.VerificationOutcome) *Refusal {
	chain := outcome.EnvelopeContent.SignerInfo.CertificateChain
	if len(chain) == 0 {
		return refuse(CodeUntrustedSignature, "signature carries no certificate chain")
	}
	if r := v.checkDistributionPoint(chain[0]); r != nil {
		return r
	}
	checked := false
	for _, r := range outcome.VerificationResults {
		if r.Type == trustpolicy.TypeRevocation && r.Error == nil {
			checked = true
		}
	}
	if !checked {
		return refuse(CodeRevocationUnknown, "revocation was not checked")
	}
	meta, err := outcome.UserMetadata()
	if err != nil {
		return &Refusal{Code: CodeUntrustedSignature, Err: err}
	}
	signedFor, ok := meta[MetadataRepository]
	if !ok {
		return refuse(CodeWrongRepository, "signature names no repository (%s)", MetadataRepository)
	}
	if n, err := registryclient.Normalize(signedFor); err != nil || n != v.repository {
		return refuse(CodeWrongRepository, "signature is for repository %q, not %q", signedFor, v.repository)
	}
	return nil
}

// checkDistributionPoint refuses a signer without a CRL distribution point
// (notation would pass it under strict with a warning) and one that points
// anywhere but the configured CRL URL.
func (v *Verifier) checkDistributionPoint(leaf *x509.Certificate) *Refusal {
	if len(leaf.CRLDistributionPoints) == 0 {
		return refuse(CodeNoCRLDistributionPoint, "signing certificate %q (serial %x) names no CRL distribution point", leaf.Subject, leaf.SerialNumber)
	}
	for _, dp := range leaf.CRLDistributionPoints {
		if dp != v.crlURL {
			return refuse(CodeNoCRLDistributionPoint, "signing certificate %q names CRL distribution point %q, not the configured %q", leaf.Subject, dp, v.crlURL)
		}
	}
	return nil
}

// readLabels reads the config labels of this platform's image, reached from
// the signed digest through digest-verified manifests, so they are covered
// by the signature.
func (v *Verifier) readLabels(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor) (map[string]string, error) {
	mdesc := desc
	if isIndex(desc.MediaType) {
		b, err := fetchVerified(ctx, repo.Manifests(), desc)
		if err != nil {
			return nil, err
		}
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, refuse(CodeInvalidImage, "index %s: %v", desc.Digest, err)
		}
		child, ok := selectPlatform(idx.Manifests, v.platform)
		if !ok {
			return nil, refuse(CodeInvalidImage, "index %s has no image for %s", desc.Digest, platformString(v.platform))
		}
		mdesc = child
	}
	b, err := fetchVerified(ctx, repo.Manifests(), mdesc)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, refuse(CodeInvalidImage, "manifest %s: %v", mdesc.Digest, err)
	}
	if !isConfig(m.Config.MediaType) {
		return nil, refuse(CodeInvalidImage, "manifest %s has config of type %q, not an image config", mdesc.Digest, m.Config.MediaType)
	}
	cb, err := fetchVerified(ctx, repo.Blobs(), m.Config)
	if err != nil {
		return nil, err
	}
	var img ocispec.Image
	if err := json.Unmarshal(cb, &img); err != nil {
		return nil, refuse(CodeInvalidImage, "config %s: %v", m.Config.Digest, err)
	}
	if img.OS != "" && (img.OS != v.platform.OS || img.Architecture != v.platform.Architecture) {
		return nil, refuse(CodeInvalidImage, "config %s is for %s/%s, not %s", m.Config.Digest, img.OS, img.Architecture, platformString(v.platform))
	}
	return img.Config.Labels, nil
}

// fetchVerified fetches a bounded manifest or blob and checks it against its
// digest. Content that does not match is a refusal; network trouble is not.
func fetchVerified(ctx context.Context, f content.Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size < 0 || desc.Size > maxMetadataSize {
		return nil, refuse(CodeInvalidImage, "%s is %d bytes (limit %d)", desc.Digest, desc.Size, maxMetadataSize)
	}
	b, err := content.FetchAll(ctx, f, desc)
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, content.ErrMismatchedDigest), errors.Is(err, content.ErrTrailingData),
		errors.Is(err, content.ErrInvalidDescriptorSize), errors.Is(err, errdef.ErrNotFound):
		return nil, &Refusal{Code: CodeInvalidImage, Err: fmt.Errorf("fetch %s: %w", desc.Digest, err)}
	}
	return nil, fmt.Errorf("fetch %s: %w", desc.Digest, err)
}

func selectPlatform(ms []ocispec.Descriptor, want ocispec.Platform) (ocispec.Descriptor, bool) {
	for _, m := range ms {
		if m.Platform == nil || !isManifest(m.MediaType) {
			continue
		}
		p := m.Platform
		if p.OS == want.OS && p.Architecture == want.Architecture && variantMatches(p.Architecture, p.Variant, want.Variant) {
			return m, true
		}
	}
	return ocispec.Descriptor{}, false
}

func variantMatches(arch, have, want string) bool {
	if want == "" {
		return true
	}
	norm := func(v string) string {
		if arch == "arm64" && v == "v8" {
			return ""
		}
		return v
	}
	return norm(have) == norm(want)
}

func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

const (
	dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	dockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	dockerConfig       = "application/vnd.docker.container.image.v1+json"
)

func isIndex(mt string) bool    { return mt == ocispec.MediaTypeImageIndex || mt == dockerManifestList }
func isManifest(mt string) bool { return mt == ocispec.MediaTypeImageManifest || mt == dockerManifest }
func isConfig(mt string) bool   { return mt == ocispec.MediaTypeImageConfig || mt == dockerConfig }

// canonicalVersion returns the semver form golang.org/x/mod/semver compares
// ("1.2.3" → "v1.2.3").
func canonicalVersion(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	if !strings.HasPrefix(s, "v") {
		s = "v" + s
	}
	if !semver.IsValid(s) {
		return "", false
	}
	return s, true
}

// CheckPulled confirms that what the engine pulled is the verified image.
// pulledDigests are the image's repo digests as Docker reports them
// ("repo@sha256:…") or bare digests; one must be the verified digest (and,
// when it names a repository, the verified repository).
func CheckPulled(v Verified, pulledDigests []string) error {
	repo, _, _ := strings.Cut(v.Reference, "@")
	for _, d := range pulledDigests {
		name, dg, hasName := strings.Cut(d, "@")
		if !hasName {
			name, dg = "", d
		}
		if dg != v.Digest || v.Digest == "" {
			continue
		}
		if name != "" {
			if n, err := registryclient.Normalize(name); err != nil || n != repo {
				continue
			}
		}
		return nil
	}
	return refuse(CodeDigestMismatch, "pulled image digests %v do not include the verified %s", pulledDigests, v.Reference)
}

// pinnedStore is the only trust store: the root CA baked into the updater.
type pinnedStore struct{ root *x509.Certificate }

func (s pinnedStore) GetCertificates(_ context.Context, t truststore.Type, name string) ([]*x509.Certificate, error) {
	if t != truststore.TypeCA || name != trustStoreName {
		return nil, truststore.TrustStoreError{Msg: fmt.Sprintf("no trust store %s:%s", t, name)}
	}
	return []*x509.Certificate{s.root}, nil
}

type refuseTransport struct{}

func (refuseTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("request to %s refused: only the configured CRL URL may be fetched", r.URL.Redacted())
}

// registryHost is the registry part of a canonical repository name.
func registryHost(repository string) string {
	host, _, _ := strings.Cut(repository, "/")
	return host
}

// serialHex is the form every report of a serial uses.
func serialHex(n *big.Int) string { return fmt.Sprintf("%x", n) }
