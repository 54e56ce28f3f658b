// Package registryclient owns how Radar Pod tools reach an OCI registry: an
// oras-go repository client with the credentials dockerauth loaded and plain
// HTTP only for loopback registries. The release signer and the updater's verifier share it so that
// what is signed and what is verified are addressed the same way.
package registryclient

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/distribution/reference"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/radarpod/radarpod/internal/dockerauth"
)

// Normalize returns the canonical name of an image repository
// ("radar-agent" → "docker.io/library/radar-agent") so that names written by
// different tools compare equal. It rejects references carrying a tag or
// digest.
func Normalize(repository string) (string, error) {
	named, err := reference.ParseNormalizedNamed(repository)
	if err != nil {
		return "", fmt.Errorf("repository %q: %w", repository, err)
	}
	if !reference.IsNameOnly(named) {
		return "", fmt.Errorf("repository %q: must not carry a tag or digest", repository)
	}
	return named.Name(), nil
}

// SplitReference splits an image reference into its canonical repository
// and its tag or digest ("" when the reference names neither).
func SplitReference(ref string) (repository, tagOrDigest string, err error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	switch r := named.(type) {
	case reference.Canonical:
		return named.Name(), r.Digest().String(), nil
	case reference.Tagged:
		return named.Name(), r.Tag(), nil
	}
	return named.Name(), "", nil
}

// IsLoopback reports whether a registry host (with optional port) is on this
// machine: only such registries may be spoken to over plain HTTP.
func IsLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Repository returns a client for repository (any form Normalize accepts).
// httpClient carries every request, token requests included; its timeouts
// bound each call. creds are the Docker-format credentials (nil means
// anonymous access).
func Repository(repository string, httpClient *http.Client, creds *dockerauth.Auth) (*remote.Repository, error) {
	name, err := Normalize(repository)
	if err != nil {
		return nil, err
	}
	repo, err := remote.NewRepository(name)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", name, err)
	}
	repo.PlainHTTP = IsLoopback(repo.Reference.Registry)
	repo.Client = &auth.Client{
		Client:     httpClient,
		Cache:      auth.NewCache(),
		Credential: credentialFunc(creds),
	}
	return repo, nil
}

// credentialFunc adapts Docker-format credentials to oras-go.
func credentialFunc(creds *dockerauth.Auth) auth.CredentialFunc {
	return func(_ context.Context, hostport string) (auth.Credential, error) {
		ac, ok := creds.Lookup(hostport)
		if !ok {
			return auth.EmptyCredential, nil
		}
		return auth.Credential{
			Username: ac.Username, Password: ac.Password,
			RefreshToken: ac.IdentityToken, AccessToken: ac.RegistryToken,
		}, nil
	}
}
