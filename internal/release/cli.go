package release

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/atomicfile"
	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/dockerauth"
	"github.com/radarpod/radarpod/internal/httpclient"
	"github.com/radarpod/radarpod/internal/update/verify"
)

// Exit codes of radar-sign.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// signTimeout bounds a whole `sign` (resolve, push blob, push manifest).
const signTimeout = 5 * time.Minute

const usageText = `radar-sign — release PKI, image signing and CRL for Radar Pod updates

Usage:
  radar-sign init-ca      [--dir DIR] [--name CN] [--key-type T] [--validity DUR]
  radar-sign issue-signer --crl-url URL [--dir DIR] [--name CN] [--key-type T]
                          [--validity DUR] [--cert FILE] [--key FILE]
  radar-sign sign         [--cert FILE] [--key FILE] [--expiry DUR] IMAGE-REF
  radar-sign crl          [--dir DIR] [--revoke SERIAL]... [--next-update DUR] [--out FILE]
  radar-sign check-crl    --root FILE [--min-validity DUR] [--newer-than FILE|URL [--allow-unpublished]]
                          FILE|URL
  radar-sign version

Run "radar-sign COMMAND -h" for the flags of a command. The CA directory
holds the root key: keep it offline (see deploy/pki/README.md).
Exit status: 0 success, 1 failure, 2 usage error.
`

// Run is radar-sign: it parses args (without the program name), does the
// work and returns the exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return ExitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return ExitOK
	case "version":
		fmt.Fprintf(stdout, "radar-sign %s (%s)\n", buildinfo.Version, buildinfo.Commit)
		return ExitOK
	case "init-ca":
		err = runInitCA(rest, stdout, stderr)
	case "issue-signer":
		err = runIssueSigner(rest, stdout, stderr)
	case "sign":
		err = runSign(ctx, rest, stdout, stderr)
	case "crl":
		err = runCRL(rest, stdout, stderr)
	case "check-crl":
		err = runCheckCRL(ctx, rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "radar-sign: unknown command %q\n\n%s", cmd, usageText)
		return ExitUsage
	}
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "radar-sign %s: %v\n", cmd, err)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "radar-sign %s: %v\n", cmd, err)
	return ExitError
}

type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// newFlags makes a flag set whose parse errors are usage errors and whose
// -h prints to stdout.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: radar-sign %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return flag.ErrHelp
		}
		if a == "--" {
			break
		}
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	return nil
}

func keyTypeFlag(fs *flag.FlagSet) *string {
	names := make([]string, len(KeyTypes))
	for i, k := range KeyTypes {
		names[i] = string(k)
	}
	return fs.String("key-type", string(KeyECDSAP256), "key algorithm: "+strings.Join(names, ", "))
}

func checkKeyType(s string) (KeyType, error) {
	for _, k := range KeyTypes {
		if string(k) == s {
			return k, nil
		}
	}
	return "", usagef("--key-type %q: want one of %v", s, KeyTypes)
}

func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func runInitCA(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("init-ca", "init-ca [flags]", stderr)
	dir := fs.String("dir", "pki", "CA directory (created; holds the root key)")
	name := fs.String("name", "Radar Pod Release Root CA", "root certificate common name")
	kt := keyTypeFlag(fs)
	validity := fs.Duration("validity", 10*365*24*time.Hour, "root certificate validity")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	k, err := checkKeyType(*kt)
	if err != nil {
		return err
	}
	ca, err := InitCA(*dir, CAOptions{CommonName: *name, KeyType: k, Validity: *validity})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "root CA %q serial %s valid until %s\ncertificate: %s (bake into the updater image as RADAR_ROOT_CA_FILE)\nprivate key: %s (keep offline)\n",
		ca.Cert.Subject.CommonName, FormatSerial(ca.Cert.SerialNumber), ca.Cert.NotAfter.UTC().Format(time.RFC3339),
		filepath.Join(*dir, RootCertFile), filepath.Join(*dir, RootKeyFile))
	return nil
}

func runIssueSigner(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("issue-signer", "issue-signer --crl-url URL [flags]", stderr)
	dir := fs.String("dir", "pki", "CA directory")
	name := fs.String("name", "Radar Pod release signer", "signing certificate common name")
	crlURL := fs.String("crl-url", "", "CRL distribution point the pods fetch (RADAR_CRL_URL); required")
	kt := keyTypeFlag(fs)
	validity := fs.Duration("validity", 365*24*time.Hour, "signing certificate validity")
	certPath := fs.String("cert", "signer.pem", "where to write the certificate chain")
	keyPath := fs.String("key", "signer.key", "where to write the private key (0600)")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *crlURL == "" || !strings.HasPrefix(*crlURL, "https://") {
		return usagef("--crl-url must be the https URL pods fetch the CRL from")
	}
	k, err := checkKeyType(*kt)
	if err != nil {
		return err
	}
	ca, err := LoadCA(*dir)
	if err != nil {
		return err
	}
	id, err := ca.IssueSigner(SignerOptions{CommonName: *name, KeyType: k, Validity: *validity, CRLURL: *crlURL})
	if err != nil {
		return err
	}
	if err := WriteIdentity(id, *certPath, *keyPath); err != nil {
		return err
	}
	leaf := id.Leaf()
	fmt.Fprintf(stdout, "signer %q serial %s valid until %s\ncertificate chain: %s\nprivate key: %s\n",
		leaf.Subject.CommonName, FormatSerial(leaf.SerialNumber), leaf.NotAfter.UTC().Format(time.RFC3339), *certPath, *keyPath)
	return nil
}

func runSign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sign", "sign [flags] IMAGE-REF (registry/repository:tag or @sha256:digest)", stderr)
	certPath := fs.String("cert", "signer.pem", "signing certificate chain")
	keyPath := fs.String("key", "signer.key", "signing private key")
	expiry := fs.Duration("expiry", 0, "signature expiry (0: lives as long as the certificate)")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one IMAGE-REF, got %d", fs.NArg())
	}
	if *expiry < 0 {
		return usagef("--expiry must not be negative")
	}
	id, err := LoadIdentity(*certPath, *keyPath)
	if err != nil {
		return err
	}
	if len(id.Leaf().CRLDistributionPoints) == 0 {
		return fmt.Errorf("%s names no CRL distribution point: every pod would refuse the signature", *certPath)
	}
	ctx, cancel := context.WithTimeout(ctx, signTimeout)
	defer cancel()
	creds, err := dockerauth.Load(config.Environ(os.Environ()))
	if err != nil {
		return err
	}
	res, err := Sign(ctx, id, fs.Arg(0), SignOptions{Expiry: *expiry, Auth: creds})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signed %s (signer serial %s)\n", res.Reference, res.Serial)
	return nil
}

// serialList collects repeated --revoke flags.
type serialList []*big.Int

func (s *serialList) String() string {
	var out []string
	for _, n := range *s {
		out = append(out, FormatSerial(n))
	}
	return strings.Join(out, ",")
}

func (s *serialList) Set(v string) error {
	n, err := ParseSerial(v)
	if err != nil {
		return err
	}
	*s = append(*s, n)
	return nil
}

func runCRL(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("crl", "crl [flags]", stderr)
	dir := fs.String("dir", "pki", "CA directory (the CRL number and revocations are kept there)")
	var revoke serialList
	fs.Var(&revoke, "revoke", "revoke a signing certificate by serial (hex, as `openssl x509 -serial` prints it); repeatable; revocations accumulate")
	next := fs.Duration("next-update", DefaultCRLValidity, "how long the CRL stays current (nextUpdate − thisUpdate)")
	out := fs.String("out", "rootCRL.crl.pem", "where to write the PEM CRL")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *next <= 0 {
		return usagef("--next-update must be positive")
	}
	ca, err := LoadCA(*dir)
	if err != nil {
		return err
	}
	crl, err := ca.IssueCRL(CRLOptions{Revoke: revoke, Validity: *next})
	if err != nil {
		return err
	}
	if err := atomicfile.Write(*out, crl.PEM, 0o644); err != nil {
		return fmt.Errorf("write CRL: %w", err)
	}
	fmt.Fprintf(stdout, "CRL number %s, thisUpdate %s, nextUpdate %s, %d revoked [%s] written to %s\n",
		crl.Number, crl.ThisUpdate.UTC().Format(time.RFC3339), crl.NextUpdate.UTC().Format(time.RFC3339),
		len(crl.Revoked), strings.Join(crl.Revoked, " "), *out)
	return nil
}

// runCheckCRL applies the pods' rules to a CRL file or URL before it is
// published (and to what is published, on a schedule): signed by the root,
// current, with enough validity left, and numbered above what pods saw.
func runCheckCRL(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check-crl", "check-crl --root FILE [flags] FILE|URL", stderr)
	rootFile := fs.String("root", "", "the pinned root CA certificate (PEM); required")
	minValidity := fs.Duration("min-validity", 0, "fail unless the CRL stays current at least this much longer")
	newerThan := fs.String("newer-than", "", "fail unless the CRL's number is above this CRL's (file or https URL; an unreachable URL is an error)")
	allowUnpublished := fs.Bool("allow-unpublished", false, "with --newer-than URL: accept an HTTP 404 there as nothing published yet (the first publish); any other failure stays an error")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if *rootFile == "" || fs.NArg() != 1 {
		return usagef("need --root and exactly one CRL file or URL")
	}
	if *allowUnpublished && !strings.HasPrefix(*newerThan, "https://") {
		return usagef("--allow-unpublished applies to --newer-than with an https URL")
	}
	roots, err := ReadCertsFile(*rootFile)
	if err != nil {
		return err
	}
	now := time.Now()
	list, err := loadCheckedCRL(ctx, fs.Arg(0), roots[0], now)
	if err != nil {
		return err
	}
	left := list.NextUpdate.Sub(now)
	fmt.Fprintf(stdout, "CRL number %s, thisUpdate %s, nextUpdate %s (%s left), %d revoked\n",
		list.Number, list.ThisUpdate.UTC().Format(time.RFC3339), list.NextUpdate.UTC().Format(time.RFC3339),
		left.Round(time.Minute), len(list.RevokedCertificateEntries))
	if left < *minValidity {
		return fmt.Errorf("CRL number %s is current for only %s more, less than %s: re-issue it (deploy/pki/README.md)", list.Number, left.Round(time.Minute), *minValidity)
	}
	if *newerThan != "" {
		prev, err := loadCheckedCRL(ctx, *newerThan, roots[0], now)
		var r *verify.Refusal
		if errors.As(err, &r) && r.Code == verify.CodeCRLExpired {
			// An expired predecessor still fixes the number to beat.
			prev, err = parseCRLOnly(ctx, *newerThan)
		}
		if errors.Is(err, verify.ErrCRLNotPublished) && *allowUnpublished {
			// The bucket answers 404 (not 403: allUsers may list it)
			// only when the object does not exist: a first publish.
			fmt.Fprintf(stdout, "nothing published at %s yet (HTTP 404): first publish, no number to beat\n", *newerThan)
			return nil
		}
		if err != nil {
			return fmt.Errorf("--newer-than: %w", err)
		}
		if list.Number.Cmp(prev.Number) <= 0 {
			return fmt.Errorf("CRL number %s is not above %s's %s: pods would refuse it as a replay", list.Number, *newerThan, prev.Number)
		}
	}
	return nil
}

func loadCheckedCRL(ctx context.Context, src string, root *x509.Certificate, now time.Time) (*x509.RevocationList, error) {
	raw, err := readCRLSource(ctx, src)
	if err != nil {
		return nil, err
	}
	return verify.CheckCRL(raw, root, now)
}

func parseCRLOnly(ctx context.Context, src string) (*x509.RevocationList, error) {
	raw, err := readCRLSource(ctx, src)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(raw); blk != nil {
		raw = blk.Bytes
	}
	return x509.ParseRevocationList(raw)
}

func readCRLSource(ctx context.Context, src string) ([]byte, error) {
	if strings.HasPrefix(src, "https://") {
		client := httpclient.New(httpclient.Options{UserAgent: "radar-sign/" + buildinfo.Version})
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return verify.FetchCRL(ctx, client, src)
	}
	if strings.Contains(src, "://") {
		return nil, usagef("%s: only https URLs or files", src)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("read CRL: %w", err)
	}
	return b, nil
}
