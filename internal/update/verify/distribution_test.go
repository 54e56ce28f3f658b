package verify_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/registrytest"
	"github.com/radarpod/radarpod/internal/update/verify"
)

// Against the real distribution 2.8 registry, which has no referrers API:
// signing must fall back to the sha256-<digest> tag schema and verification
// must find the signature there.
func TestVerifyAgainstDistribution(t *testing.T) {
	f := newFixture(t, registrytest.StartDistribution(t))
	digest := f.pushSigned("1.2.0")

	tags, err := registrytest.Tags(f.ctx, f.repo)
	if err != nil {
		t.Fatal(err)
	}
	fallbackTag := strings.Replace(digest, ":", "-", 1)
	if !slices.Contains(tags, fallbackTag) {
		t.Fatalf("no referrers tag %s after signing; tags %v", fallbackTag, tags)
	}

	got, err := f.verify("1.2.0", "1.1.0")
	checkOutcome(t, got, err, accepted())
	if got.Digest != digest {
		t.Fatalf("verified %s, pushed %s", got.Digest, digest)
	}

	// An unsigned image beside it is refused: the fallback finds nothing
	// for a digest nobody signed.
	f.push(f.repo+":1.3.0", agentSpec("1.3.0", "radar-agent", multiArch...))
	_, err = f.verify("1.3.0", "1.2.0")
	var r *verify.Refusal
	if !errors.As(err, &r) || r.Code != verify.CodeUnsigned {
		t.Fatalf("unsigned image on distribution: %v", err)
	}
}
