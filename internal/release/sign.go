package release

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/notaryproject/notation-core-go/signature/jws"
	"github.com/notaryproject/notation-go"
	"github.com/notaryproject/notation-go/registry"
	"github.com/notaryproject/notation-go/signer"
	"github.com/opencontainers/go-digest"

	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/dockerauth"
	"github.com/radarpod/radarpod/internal/httpclient"
	"github.com/radarpod/radarpod/internal/update/verify"
	"github.com/radarpod/radarpod/internal/update/verify/registryclient"
)

// SignOptions tune Sign.
type SignOptions struct {
	// HTTPClient carries the registry requests; nil means httpclient.New.
	HTTPClient *http.Client
	// Expiry makes the signature itself expire; zero means it lives as long
	// as the signing certificate.
	Expiry time.Duration
	// Auth are the registry credentials (nil: anonymous).
	Auth *dockerauth.Auth
}

// Signed describes a signature pushed to the registry.
type Signed struct {
	Repository string // canonical repository name, as put in the signature
	Digest     string // the signed manifest or index digest
	Reference  string // Repository@Digest
	Serial     string // signing certificate serial (hex)
}

// Sign resolves imageRef (tag or digest) to a digest once and signs that
// digest with a notation signature stored in the registry beside the image.
// The signature carries the repository name as user metadata
// (verify.MetadataRepository): the signature covers only the digest, and the
// updater refuses an image whose signature names another repository.
func Sign(ctx context.Context, id *Identity, imageRef string, o SignOptions) (Signed, error) {
	repoName, ref, err := registryclient.SplitReference(imageRef)
	if err != nil {
		return Signed{}, fmt.Errorf("sign: %w", err)
	}
	if ref == "" {
		return Signed{}, fmt.Errorf("sign: %q names neither a tag nor a digest", imageRef)
	}
	client := o.HTTPClient
	if client == nil {
		client = httpclient.New(httpclient.Options{UserAgent: "radar-sign/" + buildinfo.Version})
	}
	repo, err := registryclient.Repository(repoName, client, o.Auth)
	if err != nil {
		return Signed{}, fmt.Errorf("sign: %w", err)
	}
	desc, err := repo.Resolve(ctx, ref)
	if err != nil {
		return Signed{}, fmt.Errorf("sign: resolve %s: %w", imageRef, err)
	}
	if d, err := digest.Parse(ref); err == nil && d != desc.Digest {
		return Signed{}, fmt.Errorf("sign: registry returned %s for %s", desc.Digest, imageRef)
	}
	gs, err := signer.NewGenericSigner(id.Key, id.Chain)
	if err != nil {
		return Signed{}, fmt.Errorf("sign: %w", err)
	}
	target := repoName + "@" + desc.Digest.String()
	_, err = notation.Sign(ctx, gs, registry.NewRepository(repo), notation.SignOptions{
		SignerSignOptions: notation.SignerSignOptions{
			SignatureMediaType: jws.MediaTypeEnvelope,
			ExpiryDuration:     o.Expiry.Truncate(time.Second),
			SigningAgent:       "radar-sign/" + buildinfo.Version,
		},
		// By digest: what the tag pointed to a moment ago is what we sign.
		ArtifactReference: target,
		UserMetadata:      map[string]string{verify.MetadataRepository: repoName},
	})
	if err != nil {
		return Signed{}, fmt.Errorf("sign %s: %w", target, err)
	}
	return Signed{
		Repository: repoName,
		Digest:     desc.Digest.String(),
		Reference:  target,
		Serial:     FormatSerial(id.Leaf().SerialNumber),
	}, nil
}
