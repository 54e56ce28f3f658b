package container

import (
	"context"
	"errors"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
)

// Image is a local image as the engine knows it.
type Image struct {
	ID string
	// RepoDigests are the repo@sha256:... references the engine recorded
	// for it: what a pull by digest really fetched.
	RepoDigests []string
	Labels      map[string]string
}

// Pull fetches ref, which must be pinned by digest (repo@sha256:...), and
// returns the local image with the digests the engine recorded, so the
// caller can confirm it got what was signed.
func (c *Client) Pull(ctx context.Context, ref string) (Image, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return Image{}, fmt.Errorf("pull %q: %w", ref, err)
	}
	if _, ok := named.(reference.Digested); !ok {
		return Image{}, fmt.Errorf("pull %q: refusing a reference without a digest", ref)
	}
	auth, err := c.auth.Encoded(reference.Domain(named))
	if err != nil {
		return Image{}, fmt.Errorf("pull %q: registry credentials: %w", ref, err)
	}
	c.log.Info("pulling image", "ref", ref)
	resp, err := c.api.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: auth})
	if err != nil {
		return Image{}, fmt.Errorf("pull %q: %w", ref, err)
	}
	// The engine reports pull failures inside the stream, not as a status.
	if err := resp.Wait(ctx); err != nil {
		resp.Close()
		return Image{}, fmt.Errorf("pull %q: %w", ref, err)
	}
	resp.Close()
	img, err := c.imageInspect(ctx, ref)
	if err != nil {
		return Image{}, fmt.Errorf("pull %q: %w", ref, err)
	}
	return toImage(img), nil
}

func toImage(img image.InspectResponse) Image {
	out := Image{ID: img.ID, RepoDigests: img.RepoDigests}
	if img.Config != nil {
		out.Labels = img.Config.Labels
	}
	return out
}

func (c *Client) imageInspect(ctx context.Context, ref string) (image.InspectResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := c.api.ImageInspect(ctx, ref)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return image.InspectResponse{}, fmt.Errorf("image %q: %w", ref, ErrNotFound)
		}
		return image.InspectResponse{}, fmt.Errorf("inspect image %q: %w", ref, err)
	}
	return res.InspectResponse, nil
}

// ErrImageInUse: the image still backs a container (any container, not only
// ours), so it was kept.
var ErrImageInUse = errors.New("image in use")

// RemoveImage deletes the image with this ID once nothing uses it. It never
// forces: an image another container still uses is kept (ErrImageInUse).
func (c *Client) RemoveImage(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err := c.api.ImageRemove(ctx, id, client.ImageRemoveOptions{PruneChildren: true})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("remove image %s: %w: %v", short(id), ErrImageInUse, err)
	}
	return fmt.Errorf("remove image %s: %w", short(id), err)
}

// Tag points target (a repo:tag reference) at the image source names. The
// updater uses it after a swap so that the reference the operator's compose
// file names resolves to the installed agent, and a later `compose up` does
// not recreate the agent from the old image.
func (c *Client) Tag(ctx context.Context, source, target string) error {
	named, err := reference.ParseNormalizedNamed(target)
	if err != nil {
		return fmt.Errorf("tag %q: %w", target, err)
	}
	if _, digested := named.(reference.Digested); digested {
		return fmt.Errorf("tag %q: a digest reference cannot be re-pointed", target)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := c.api.ImageTag(ctx, client.ImageTagOptions{Source: source, Target: reference.TagNameOnly(named).String()}); err != nil {
		return fmt.Errorf("tag %s as %s: %w", source, target, err)
	}
	return nil
}
