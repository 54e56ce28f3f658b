package verify

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/notaryproject/notation-core-go/revocation/crl"

	"github.com/radarpod/radarpod/internal/httpclient"
	"github.com/radarpod/radarpod/internal/update/statedir"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// MaxCRLSize caps the CRL download: ours lists a handful of serials, and a
// Pi must not be made to buffer an arbitrary body.
const MaxCRLSize = 1 << 20

// crlFetchTimeout bounds one CRL download on top of the client's timeouts.
const crlFetchTimeout = 30 * time.Second

// CRLStateFile (in Config.StateDir) holds the last CRL that passed every
// check and the highest cRLNumber ever accepted, in one file so that they
// are replaced together.
const CRLStateFile = "crl-state.json"

// MaxCRLStateSize bounds the state file read: a cached CRL (at most
// MaxCRLSize, base64 in JSON) and a number.
const MaxCRLStateSize = 2*MaxCRLSize + 64<<10

// notBeforeTolerance lets a CRL issued moments ago on a machine whose clock
// runs slightly behind be used at once; a thisUpdate in the future carries no
// risk, unlike a lapsed nextUpdate, which is never tolerated.
const notBeforeTolerance = wallclock.MaxSkew

var (
	oidDeltaCRLIndicator        = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDistributionPoint = asn1.ObjectIdentifier{2, 5, 29, 28}
)

type crlState struct {
	URL           string    `json:"url"`
	HighestNumber string    `json:"highest_number"` // decimal
	CRL           []byte    `json:"crl"`            // DER
	FetchedAt     time.Time `json:"fetched_at"`

	highestNumber *big.Int // HighestNumber parsed (nil: none yet)
}

// crlSource fetches and checks the release CRL: over HTTPS from the one
// configured URL, size-capped, signed by the pinned root, current, and not
// older (by cRLNumber) than any CRL accepted before.
type crlSource struct {
	url    string
	client *http.Client
	root   *x509.Certificate
	// state is the updater's private state directory, held open; every
	// read and write of the CRL state goes through it.
	state *statedir.Dir
	clock *wallclock.Clock
	log   *slog.Logger
	// mu serializes read-modify-write of the state file.
	mu sync.Mutex
}

func newCRLSource(url string, client *http.Client, root *x509.Certificate, state *statedir.Dir, clock *wallclock.Clock, log *slog.Logger) *crlSource {
	// Only the configured URL is ever fetched: a redirect elsewhere counts
	// as the URL being down.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &crlSource{url: url, client: &c, root: root, state: state, clock: clock, log: log}
}

// current returns a CRL that may be used now, or a *Refusal, or a
// *wallclock.UntrustedError. A CRL URL that is down falls back to the cached
// CRL only while that one is still current; a CRL that was fetched but fails
// a check is refused even if the cache holds a good one, so that replaying
// or corrupting the download is never quietly absorbed.
//
// Every judgement of currency (of the fresh CRL or the cached one) waits
// for a trusted clock: a clock years ahead would call a good CRL expired,
// one years behind would accept a lapsed one. The clock is judged after
// the download, whose Date (received over TLS) is what a pod without NTP
// learns the time from.
func (s *crlSource) current(ctx context.Context) (*x509.RevocationList, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.loadState()
	if err != nil {
		return nil, err
	}

	raw, err := s.download(ctx)
	if err != nil {
		if errors.Is(err, httpclient.ErrTooLarge) {
			return nil, &Refusal{Code: CodeCRLTooLarge, Err: err}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fetch CRL: %w", ctx.Err())
		}
		if cerr := s.clock.CertificateTimeError(err, "the CRL host "+s.host()); cerr != nil {
			return nil, cerr
		}
		cached, cerr := s.cached(st)
		if cerr != nil {
			// Nothing to judge: unreachable whatever the time.
			return nil, &Refusal{Code: CodeCRLUnreachable, Err: fmt.Errorf("%w; %w", err, cerr)}
		}
		if cerr := s.clock.Check(); cerr != nil {
			return nil, fmt.Errorf("%w (the CRL URL is unreachable: %v; whether the cached CRL number %s is still current cannot be judged by this clock)",
				cerr, err, cached.Number)
		}
		if cerr := s.check(cached); cerr != nil {
			return nil, &Refusal{Code: CodeCRLUnreachable, Err: fmt.Errorf("%w; cached CRL: %w", err, cerr)}
		}
		// The cache is the last CRL accepted, so its number is the
		// highest seen; one below it (a state raised by a migration, see
		// MergeLegacyCRLState) would let revocations published since be
		// forgotten.
		if h := st.highestNumber; h != nil && cached.Number.Cmp(h) < 0 {
			return nil, refuse(CodeCRLUnreachable, "%v; the cached CRL number %s is lower than %s seen before", err, cached.Number, h)
		}
		s.log.Warn("CRL unreachable; using the cached CRL, which is still current",
			"url", s.url, "error", err, "crl_number", cached.Number.String(), "next_update", cached.NextUpdate)
		return cached, nil
	}
	if cerr := s.clock.Check(); cerr != nil {
		return nil, cerr
	}
	list, err := parseCRL(raw)
	if err != nil {
		return nil, &Refusal{Code: CodeCRLInvalid, Err: fmt.Errorf("CRL from %s: %w", s.url, err)}
	}
	if err := s.check(list); err != nil {
		return nil, err
	}
	highest := st.highestNumber
	if highest != nil && list.Number.Cmp(highest) < 0 {
		return nil, refuse(CodeCRLReplay, "CRL from %s has number %s, lower than %s seen before", s.url, list.Number, highest)
	}
	if highest == nil || list.Number.Cmp(highest) > 0 {
		highest = list.Number
	}
	next := crlState{URL: s.url, HighestNumber: highest.String(), CRL: list.Raw, FetchedAt: s.clock.Now().UTC()}
	if err := s.state.WriteJSON(CRLStateFile, next, 0o600); err != nil {
		if errors.Is(err, statedir.ErrChanged) {
			return nil, &Refusal{Code: CodeStateDirChanged, Err: err}
		}
		// Without the persisted number a later replay would pass: not safe
		// to proceed.
		return nil, fmt.Errorf("save CRL state: %w", err)
	}
	return list, nil
}

// download fetches the CRL body; the client reports the answer's Date to
// the clock.
func (s *crlSource) download(ctx context.Context) ([]byte, error) {
	return FetchCRL(ctx, s.client, s.url)
}

// host names the CRL host in messages.
func (s *crlSource) host() string {
	if u, err := url.Parse(s.url); err == nil {
		return u.Host
	}
	return s.url
}

// ErrCRLNotPublished: the CRL URL answered 404, nothing is published there.
// Pods treat it like any unreachable CRL; release tooling may accept it
// explicitly when publishing the first CRL.
var ErrCRLNotPublished = errors.New("no CRL published at this URL")

// FetchCRL downloads a CRL the way pods do: one GET with a timeout, the
// status checked, the body capped at MaxCRLSize, no redirects followed if
// client follows none. Release tooling uses it to check what is published.
func FetchCRL(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, crlFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch CRL: %w", err)
	}
	// A CDN in between must not hand out a CRL older than the bucket's.
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch CRL: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("fetch CRL %s: HTTP %s: %w", url, resp.Status, ErrCRLNotPublished)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch CRL %s: HTTP %s", url, resp.Status)
	}
	if resp.ContentLength > MaxCRLSize {
		return nil, fmt.Errorf("fetch CRL %s: %w (Content-Length %d)", url, httpclient.ErrTooLarge, resp.ContentLength)
	}
	body, err := httpclient.ReadLimited(resp.Body, MaxCRLSize)
	if err != nil {
		return nil, fmt.Errorf("fetch CRL %s: %w", url, err)
	}
	return body, nil
}

// check applies everything a CRL must satisfy besides replay protection,
// at the system clock (which current has judged trustworthy).
func (s *crlSource) check(list *x509.RevocationList) error {
	return checkCRL(list, s.root, s.clock.Now())
}

// CheckCRL parses a CRL (PEM or DER) and applies every rule a pod applies
// before trusting it, except replay protection (which needs a pod's
// memory): issued and signed by root, a cRLNumber and a nextUpdate, no delta
// or unknown critical extension, and current at now. Failures are *Refusal.
func CheckCRL(raw []byte, root *x509.Certificate, now time.Time) (*x509.RevocationList, error) {
	list, err := parseCRL(raw)
	if err != nil {
		return nil, &Refusal{Code: CodeCRLInvalid, Err: err}
	}
	if err := checkCRL(list, root, now); err != nil {
		return nil, err
	}
	return list, nil
}

func checkCRL(list *x509.RevocationList, root *x509.Certificate, now time.Time) error {
	if err := checkCRLAuthentic(list, root); err != nil {
		return err
	}
	if now.Add(notBeforeTolerance).Before(list.ThisUpdate) {
		return refuse(CodeCRLExpired, "CRL number %s is not valid before %s (now %s)", list.Number, list.ThisUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.After(list.NextUpdate) {
		return refuse(CodeCRLExpired, "CRL number %s expired at %s (now %s)", list.Number, list.NextUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkCRLAuthentic is every rule of checkCRL that does not depend on the
// time: issued and signed by root, numbered, with a nextUpdate, no delta
// or unknown critical extension.
func checkCRLAuthentic(list *x509.RevocationList, root *x509.Certificate) error {
	if !bytes.Equal(list.RawIssuer, root.RawSubject) {
		return refuse(CodeCRLWrongIssuer, "CRL issued by %q, not the pinned root %q", list.Issuer, root.Subject)
	}
	if err := list.CheckSignatureFrom(root); err != nil {
		return refuse(CodeCRLWrongIssuer, "CRL signature does not verify against the pinned root: %v", err)
	}
	if list.Number == nil || list.Number.Sign() < 0 {
		return refuse(CodeCRLInvalid, "CRL has no cRLNumber")
	}
	if list.NextUpdate.IsZero() {
		return refuse(CodeCRLInvalid, "CRL has no nextUpdate")
	}
	for _, ext := range list.Extensions {
		switch {
		case ext.Id.Equal(oidDeltaCRLIndicator):
			return refuse(CodeCRLInvalid, "delta CRLs are not supported")
		case ext.Id.Equal(oidIssuingDistributionPoint):
		case ext.Critical:
			return refuse(CodeCRLInvalid, "CRL has unsupported critical extension %v", ext.Id)
		}
	}
	return nil
}

// cached returns the CRL the state file keeps for this URL, not yet
// checked for currency.
func (s *crlSource) cached(st crlState) (*x509.RevocationList, error) {
	if st.URL != s.url || len(st.CRL) == 0 {
		return nil, errors.New("no cached CRL")
	}
	list, err := x509.ParseRevocationList(st.CRL)
	if err != nil {
		return nil, fmt.Errorf("cached CRL: %w", err)
	}
	return list, nil
}

// loadState reads the state file. A missing file is a pod that never
// accepted a CRL (nothing to protect yet). A file that exists but cannot be
// read or makes no sense fails closed: starting over would quietly accept
// an older CRL than one seen before, which is the replay the number is
// there to stop. Installs are refused (CodeCRLStateCorrupt) until an
// operator runs `radar-updater reset-crl-state`.
func (s *crlSource) loadState() (crlState, error) {
	st, err := readCRLState(s.state)
	if errors.Is(err, statedir.ErrChanged) {
		// Not the state's fault, and no reset helps: whatever the path
		// leads to now is not where this process keeps its state.
		s.log.Error("updater state directory changed; refusing installs", "error", err)
		return crlState{}, &Refusal{Code: CodeStateDirChanged, Err: err}
	}
	if err != nil {
		s.log.Error("CRL state unusable; refusing installs until an operator resets it", "path", filepath.Join(s.state.Path(), CRLStateFile), "error", err)
		return crlState{}, &Refusal{Code: CodeCRLStateCorrupt, Err: fmt.Errorf(
			"%w; replay protection cannot be checked, so installs are refused until an operator runs `radar-updater reset-crl-state`", err)}
	}
	return st, nil
}

func readCRLState(d *statedir.Dir) (crlState, error) {
	var st crlState
	path := filepath.Join(d.Path(), CRLStateFile)
	b, err := d.ReadFile(CRLStateFile, MaxCRLStateSize)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if errors.Is(err, statedir.ErrChanged) {
		return st, err
	}
	if err != nil {
		return st, fmt.Errorf("CRL state %s: %w", path, err)
	}
	return parseCRLState(b, path)
}

// parseCRLState decodes a CRL state file's content (from path, for
// messages).
func parseCRLState(b []byte, path string) (crlState, error) {
	var st crlState
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("CRL state %s: %w", path, err)
	}
	if st.HighestNumber != "" {
		n, ok := new(big.Int).SetString(st.HighestNumber, 10)
		if !ok || n.Sign() < 0 {
			return st, fmt.Errorf("CRL state %s: highest CRL number %q is not a number", path, st.HighestNumber)
		}
		st.highestNumber = n
	}
	if st.highestNumber == nil && len(st.CRL) > 0 {
		return st, fmt.Errorf("CRL state %s: a cached CRL but no highest number", path)
	}
	return st, nil
}

// MergeLegacyCRLState takes over the CRL state an older updater kept in
// the legacy location, RADAR_DATA_DIR/updater-state (raw is the content of
// its crl-state.json), on the first start of an updater whose state lives
// outside the shared volume. It returns what it did, for the log.
//
// That directory was within the agent's reach (on the old compose layout
// the agent could rmdir the mount point and recreate the directory; on the
// new one it is a plain directory of the agent's volume), so nothing in it
// is believed on its say-so. What is taken over can only make the updater
// stricter, never weaker:
//
//   - the highest CRL number only moves up, and only to the number of a
//     CRL in the file that the pinned root signed (issuer, signature,
//     number: everything but the time, which may not be trusted yet at
//     start-up). The file's own highest_number field is ignored: a forged
//     one could push the mark past every CRL ever to be published and
//     turn every future CRL into a "replay". A genuine state always caches
//     the CRL carrying its highest number, so nothing real is lost (bar a
//     number seen at an earlier RADAR_CRL_URL).
//   - that CRL becomes the cache only when this directory already holds a
//     highest number and the legacy CRL is above it (newer than anything
//     seen here: it lists every revocation up to its number, so using it
//     while the CRL URL is down is stricter than using ours), and it was
//     fetched from the configured URL; its currency is judged when it is
//     used, like any cached CRL. Otherwise it is dropped. An older CRL
//     would bring back signers revoked since, and with no number of our
//     own there is nothing to tell an older one from the newest: every
//     CRL ever published is public, still-current old ones included, so
//     the agent of a fresh pod could plant one before the updater's first
//     start and then block the CRL URL. Without a cache a CRL URL that is
//     down refuses installs (crl_unreachable), as on a fresh pod.
//   - an unreadable file, a CRL the root did not sign, or none at all is
//     ignored, not refused: failing closed on a file the agent can write
//     would hand it an off switch that takes an operator to undo.
//
// The state this directory already holds is never lowered; when it cannot
// be read, nothing is merged (installs stay refused as crl_state_corrupt
// until an operator resets it, as before). err is only for a state that
// could not be written: the caller tries again at the next start.
func (v *Verifier) MergeLegacyCRLState(raw []byte) (string, error) {
	s := v.crl
	s.mu.Lock()
	defer s.mu.Unlock()
	legacy, err := parseCRLState(raw, "(legacy)")
	if err != nil {
		return fmt.Sprintf("legacy CRL state ignored: %v", err), nil
	}
	if len(legacy.CRL) == 0 {
		return "legacy CRL state ignored: it holds no CRL to back a number", nil
	}
	list, err := x509.ParseRevocationList(legacy.CRL)
	if err != nil {
		return fmt.Sprintf("legacy CRL state ignored: its CRL does not parse: %v", err), nil
	}
	if err := checkCRLAuthentic(list, s.root); err != nil {
		return fmt.Sprintf("legacy CRL state ignored: %v", err), nil
	}
	own, err := readCRLState(s.state)
	if errors.Is(err, statedir.ErrChanged) {
		return "", err
	}
	if err != nil {
		return fmt.Sprintf("legacy CRL state not merged: our own is unreadable (%v); installs stay refused as %s until an operator resets it", err, CodeCRLStateCorrupt), nil
	}
	n := list.Number
	if own.highestNumber != nil && n.Cmp(own.highestNumber) <= 0 {
		return fmt.Sprintf("legacy CRL number %s is not above the %s already seen: kept ours", n, own.highestNumber), nil
	}
	next := crlState{URL: s.url, HighestNumber: n.String()}
	note := fmt.Sprintf("highest CRL number raised to %s from the legacy state", n)
	switch {
	case own.highestNumber == nil:
		note += "; its CRL is not cached (nothing of our own to tell it from an older one) until the next fetch"
	case legacy.URL != s.url:
		note += fmt.Sprintf("; its CRL came from %q, not the configured URL, so no CRL is cached until the next fetch", legacy.URL)
	default:
		next.CRL, next.FetchedAt = list.Raw, legacy.FetchedAt
		note += fmt.Sprintf(", above our %s: its CRL is the cache (judged for currency when used)", own.highestNumber)
	}
	if err := s.state.WriteJSON(CRLStateFile, next, 0o600); err != nil {
		return "", fmt.Errorf("save CRL state: %w", err)
	}
	return note, nil
}

// ResetCRLState moves the CRL state file in stateDir aside (to a name
// carrying the time) and returns where it went, or "" when there was none.
// It is the operator's way out of CodeCRLStateCorrupt: replay protection
// then restarts from the next CRL fetched, which is why it is never done
// automatically.
func ResetCRLState(stateDir string) (string, error) {
	d, err := statedir.Open(stateDir)
	if err != nil {
		return "", fmt.Errorf("reset CRL state: %w", err)
	}
	defer d.Close()
	q, err := d.MoveAside(CRLStateFile, ".reset-"+time.Now().UTC().Format("20060102T150405Z"))
	if err != nil {
		return "", fmt.Errorf("reset CRL state: %w", err)
	}
	return q, nil
}

// parseCRL accepts PEM ("X509 CRL") or DER.
func parseCRL(raw []byte) (*x509.RevocationList, error) {
	der := raw
	if blk, _ := pem.Decode(raw); blk != nil {
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("unexpected PEM block %q", blk.Type)
		}
		der = blk.Bytes
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("parse CRL: %w", err)
	}
	return list, nil
}

// crlFetcher is the crl.Fetcher notation's revocation check calls. It serves
// only the configured URL, fetched (over HTTPS, with every check above) at
// most once per verification, so a signer whose distribution point names
// any other place cannot make the updater fetch from there and is refused.
type crlFetcher struct {
	src  *crlSource
	once sync.Once
	list *x509.RevocationList
	err  error
}

var _ crl.Fetcher = (*crlFetcher)(nil)

func (f *crlFetcher) Fetch(ctx context.Context, url string) (*crl.Bundle, error) {
	if url != f.src.url {
		return nil, fmt.Errorf("CRL distribution point %q is not the configured %q", url, f.src.url)
	}
	f.once.Do(func() { f.list, f.err = f.src.current(ctx) })
	if f.err != nil {
		return nil, f.err
	}
	return &crl.Bundle{BaseCRL: f.list}, nil
}

// revoked reports whether the CRL the fetcher served lists serial.
func (f *crlFetcher) revoked(serial *big.Int) bool {
	if f.list == nil {
		return false
	}
	for _, e := range f.list.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}
