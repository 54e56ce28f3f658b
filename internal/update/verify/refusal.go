package verify

import "fmt"

// Refusal codes. Each names one reason an announced image is not installed;
// the updater writes the code to the status file and retries later.
const (
	CodeUnsigned               = "unsigned"                  // no signature in the registry
	CodeUntrustedSignature     = "untrusted_signature"       // does not verify or chain to the pinned root
	CodeRevoked                = "revoked"                   // signing certificate listed in the CRL
	CodeRevocationUnknown      = "revocation_unknown"        // revocation check failed for another reason
	CodeCRLExpired             = "crl_expired"               // fetched CRL outside thisUpdate..nextUpdate
	CodeCRLWrongIssuer         = "crl_wrong_issuer"          // CRL not signed by the pinned root
	CodeCRLReplay              = "crl_replay"                // cRLNumber lower than one seen before
	CodeCRLUnreachable         = "crl_unreachable"           // CRL URL down and no current cached CRL
	CodeCRLTooLarge            = "crl_too_large"             // CRL body over MaxCRLSize
	CodeCRLInvalid             = "crl_invalid"               // unparsable, no number/nextUpdate, unsupported extension
	CodeCRLStateCorrupt        = "crl_state_corrupt"         // the persisted highest cRLNumber is unreadable: replay protection cannot be checked
	CodeStateDirChanged        = "state_dir_changed"         // RADAR_UPDATER_STATE_DIR no longer leads to the directory opened at start-up (statedir.ErrChanged)
	CodeNoCRLDistributionPoint = "no_crl_distribution_point" // signer names no CDP, or one other than the configured URL
	CodeDowngrade              = "downgrade"                 // version not newer than the running one
	CodeVersionMismatch        = "version_mismatch"          // version label differs from the announced version
	CodeInvalidVersion         = "invalid_version"           // announced or running version is not semver
	CodeWrongRepository        = "wrong_repository"          // signature made for another repository
	CodeWrongComponent         = "wrong_component"           // image title label is not the configured component
	CodeNotFound               = "not_found"                 // the registry has no such tag
	CodeInvalidImage           = "invalid_image"             // not an image for this platform, oversized or corrupt metadata
	CodeDigestMismatch         = "digest_mismatch"           // the pulled image is not the verified one
)

// Refusal is a definite "do not install this image": keep the running
// agent, record Code, and try again later (a new CRL, tag or announcement
// may change the answer). Match it with errors.As(err, &r) where r is a
// *Refusal.
type Refusal struct {
	Code string
	Err  error
}

func (r *Refusal) Error() string { return fmt.Sprintf("refused (%s): %v", r.Code, r.Err) }
func (r *Refusal) Unwrap() error { return r.Err }

func refuse(code string, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Err: fmt.Errorf(format, args...)}
}

// CodeClockUntrusted is the reason code of a decision the clock blocked:
// Verify returned a wallclock.ErrUntrusted (the clock is before the build
// time, far from a registry's or the CRL host's Date, or unconfirmed while
// the kernel reports it unsynchronized). It is not a refusal of the image
// and is never recorded as one (nor as crl_expired, or an expired
// certificate): the updater waits for the clock to sync and tries again.
const CodeClockUntrusted = "clock_untrusted"
