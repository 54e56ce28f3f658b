package registrytest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	orasremote "oras.land/oras-go/v2/registry/remote"

	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/dockerauth"
	"github.com/radarpod/radarpod/internal/update/verify/registryclient"
)

// ImageSpec describes a FROM-scratch image: one layer holding Files and
// HostFiles (mode 0755, owned by root, parent directories 0755) and an image
// config. The same content goes into every platform of a multi-arch index.
type ImageSpec struct {
	// Platforms like "linux/amd64", "linux/arm64", "linux/arm/v7". More
	// than one (or Index) makes an OCI index; empty means this machine's
	// platform.
	Platforms []string
	// Index forces an OCI index even for a single platform.
	Index bool
	// Files maps a path in the image to its content.
	Files map[string][]byte
	// HostFiles maps a path in the image to a file on this machine (a
	// binary built by the test) copied in.
	HostFiles   map[string]string
	Entrypoint  []string
	Cmd         []string
	Env         []string
	User        string // e.g. "65532:65532"
	WorkingDir  string
	Labels      map[string]string // org.opencontainers.image.version, .title, .source…
	Healthcheck *v1.HealthConfig
	// Created is the config's creation time; zero means a fixed time so
	// that equal specs give equal digests.
	Created time.Time
}

// fixedCreated keeps digests reproducible across runs.
var fixedCreated = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// PushImage builds spec and pushes it to ref ("host/repo:tag"), returning
// the digest of what the tag now points to (the index for multi-platform
// specs). Loopback registries are spoken to over plain HTTP.
func PushImage(ctx context.Context, ref string, spec ImageSpec) (string, error) {
	repoName, tag, err := registryclient.SplitReference(ref)
	if err != nil {
		return "", fmt.Errorf("push image: %w", err)
	}
	if tag == "" || strings.HasPrefix(tag, "sha256:") {
		return "", fmt.Errorf("push image: %q needs a tag", ref)
	}
	repo, err := repository(repoName, &http.Client{Timeout: 5 * time.Minute})
	if err != nil {
		return "", fmt.Errorf("push image: %w", err)
	}
	platforms := spec.Platforms
	if len(platforms) == 0 {
		platforms = []string{runtime.GOOS + "/" + runtime.GOARCH}
	}
	layer, err := buildLayer(spec)
	if err != nil {
		return "", fmt.Errorf("push image: %w", err)
	}
	var manifests []ocispec.Descriptor
	for _, ps := range platforms {
		p, err := v1.ParsePlatform(ps)
		if err != nil {
			return "", fmt.Errorf("push image: %w", err)
		}
		img, err := buildImage(spec, layer, *p)
		if err != nil {
			return "", fmt.Errorf("push image: %w", err)
		}
		desc, err := pushImage(ctx, repo, img)
		if err != nil {
			return "", fmt.Errorf("push image %s (%s): %w", ref, ps, err)
		}
		desc.Platform = &ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
		manifests = append(manifests, desc)
	}
	top := manifests[0]
	if len(manifests) > 1 || spec.Index {
		idx, err := json.Marshal(ocispec.Index{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: ocispec.MediaTypeImageIndex,
			Manifests: manifests,
		})
		if err != nil {
			return "", err
		}
		top = content.NewDescriptorFromBytes(ocispec.MediaTypeImageIndex, idx)
		if err := pushIfMissing(ctx, repo.Manifests(), top, idx); err != nil {
			return "", fmt.Errorf("push index %s: %w", ref, err)
		}
	}
	top.Platform = nil
	if err := repo.Tag(ctx, top, tag); err != nil {
		return "", fmt.Errorf("tag %s: %w", ref, err)
	}
	return top.Digest.String(), nil
}

// pushImage uploads the layers, config and manifest of img.
func pushImage(ctx context.Context, repo *orasremote.Repository, img v1.Image) (ocispec.Descriptor, error) {
	layers, err := img.Layers()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		size, err := l.Size()
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		mt, err := l.MediaType()
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		b := make([]byte, size)
		_, err = io.ReadFull(rc, b)
		rc.Close()
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		desc := ocispec.Descriptor{MediaType: string(mt), Digest: digest.Digest(d.String()), Size: size}
		if err := pushIfMissing(ctx, repo.Blobs(), desc, b); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("layer: %w", err)
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := pushIfMissing(ctx, repo.Blobs(), content.NewDescriptorFromBytes(ocispec.MediaTypeImageConfig, cfg), cfg); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, raw)
	if err := pushIfMissing(ctx, repo.Manifests(), desc, raw); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest: %w", err)
	}
	return desc, nil
}

func pushIfMissing(ctx context.Context, s content.Storage, desc ocispec.Descriptor, b []byte) error {
	ok, err := s.Exists(ctx, desc)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	if err := s.Push(ctx, desc, bytes.NewReader(b)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return err
	}
	return nil
}

func buildImage(spec ImageSpec, layer v1.Layer, p v1.Platform) (v1.Image, error) {
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = p.OS, p.Architecture, p.Variant, p.OSVersion
	created := spec.Created
	if created.IsZero() {
		created = fixedCreated
	}
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		Entrypoint:  spec.Entrypoint,
		Cmd:         spec.Cmd,
		Env:         spec.Env,
		User:        spec.User,
		WorkingDir:  spec.WorkingDir,
		Labels:      spec.Labels,
		Healthcheck: spec.Healthcheck,
	}
	return mutate.ConfigFile(img, cf)
}

// buildLayer writes a reproducible tar: sorted entries, fixed times.
func buildLayer(spec ImageSpec) (v1.Layer, error) {
	files := map[string][]byte{}
	for p, b := range spec.Files {
		files[cleanPath(p)] = b
	}
	for p, host := range spec.HostFiles {
		b, err := os.ReadFile(host)
		if err != nil {
			return nil, fmt.Errorf("host file for %s: %w", p, err)
		}
		files[cleanPath(p)] = b
	}
	dirs := map[string]bool{}
	for p := range files {
		for d := path.Dir(p); d != "." && d != "/" && d != ""; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d+"/")
	}
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)

	// Sized up front: the race detector checks every byte a growing
	// buffer copies, and the agent binary in it is ~10 MB.
	total := 0
	for _, b := range files {
		total += len(b)
	}
	buf := bytes.NewBuffer(make([]byte, 0, total+(len(names)+2)*1024))
	tw := tar.NewWriter(buf)
	for _, n := range names {
		hdr := &tar.Header{Name: n, Mode: 0o755, ModTime: fixedCreated, Uname: "root", Gname: "root", Format: tar.FormatPAX}
		if strings.HasSuffix(n, "/") {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(files[n]))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(files[n]); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	// Gzip with stored blocks, once: still a valid tar+gzip layer for
	// registries and engines, but deflating the ~10 MB agent binary of
	// every test release under the race detector took over a minute of
	// CPU per package, and a layer built from the tar would be compressed
	// again for each of its digest, size and upload.
	gz := bytes.NewBuffer(make([]byte, 0, buf.Len()+buf.Len()/1000+1024))
	zw, err := gzip.NewWriterLevel(gz, gzip.NoCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(buf.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	data := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// cleanPath makes an image path relative, as tar entries are.
func cleanPath(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// CopyWithSignatures copies the image srcRef points to, together with
// everything that refers to it (notation signatures), to dstRef — what
// someone who can write to a repository can do with any validly signed
// image. Both registries must be reachable over plain HTTP on loopback.
func CopyWithSignatures(ctx context.Context, srcRef, dstRef string) error {
	srcRepoName, srcTag, err := registryclient.SplitReference(srcRef)
	if err != nil {
		return err
	}
	dstRepoName, dstTag, err := registryclient.SplitReference(dstRef)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Minute}
	src, err := repository(srcRepoName, client)
	if err != nil {
		return err
	}
	dst, err := repository(dstRepoName, client)
	if err != nil {
		return err
	}
	if _, err := oras.ExtendedCopy(ctx, src, srcTag, dst, dstTag, oras.DefaultExtendedCopyOptions); err != nil {
		return fmt.Errorf("copy %s to %s: %w", srcRef, dstRef, err)
	}
	return nil
}

// Tags lists the tags of a repository (for instance to see the
// sha256-<digest> referrers tags a registry without the referrers API gets).
func Tags(ctx context.Context, repo string) ([]string, error) {
	r, err := repository(repo, &http.Client{Timeout: time.Minute})
	if err != nil {
		return nil, err
	}
	var tags []string
	err = r.Tags(ctx, "", func(t []string) error {
		tags = append(tags, t...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", repo, err)
	}
	return tags, nil
}

// repository opens a registry client with the credentials of this process's
// Docker config, read at each call so tests can point DOCKER_CONFIG
// elsewhere.
func repository(name string, client *http.Client) (*orasremote.Repository, error) {
	creds, err := dockerauth.Load(config.Environ(os.Environ()))
	if err != nil {
		return nil, err
	}
	return registryclient.Repository(name, client, creds)
}
