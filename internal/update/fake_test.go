package update

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/radarpod/radarpod/internal/container"
	"github.com/radarpod/radarpod/internal/update/verify"
)

// fakeDocker is an in-memory engine with the rules the policy relies on:
// names are unique, mutations refuse containers without the agent label,
// an image in use cannot be removed.
type fakeDocker struct {
	mu         sync.Mutex
	containers map[string]*fakeContainer // by ID
	images     map[string]*fakeImage     // by ID
	refs       map[string]string         // reference → image ID
	registry   map[string]string         // repo@digest → version (what Pull can fetch)
	nextID     int
	mutations  []string

	// unhealthy makes WaitHealthy fail for containers of these image refs.
	unhealthy map[string]error
	// blockHealth makes WaitHealthy wait for ctx (a hung health check).
	blockHealth bool
	// pullDigests overrides what the engine reports having pulled.
	pullDigests []string
	// failOn makes a mutating method fail once with the error.
	failOn map[string]error
	// health overrides Docker's health word of running containers, by
	// image reference (default "healthy").
	health map[string]string
	// agentCalls counts Agent calls: one per poll that reached the engine.
	agentCalls int
}

type fakeContainer struct {
	ID, Name, Image, ImageRef string
	Labels                    map[string]string
	Running                   bool
}

type fakeImage struct {
	ID          string
	RepoDigests []string
	Version     string
}

func newFakeDocker() *fakeDocker {
	return &fakeDocker{
		containers: map[string]*fakeContainer{},
		images:     map[string]*fakeImage{},
		refs:       map[string]string{},
		registry:   map[string]string{},
		unhealthy:  map[string]error{},
		failOn:     map[string]error{},
		health:     map[string]string{},
	}
}

// publish makes repo@digest pullable with this version.
func (d *fakeDocker) publish(ref, version string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.registry[ref] = version
}

// addImage puts a local image in place (the one the agent runs).
func (d *fakeDocker) addImage(ref, version string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addImageLocked(ref, version)
}

func (d *fakeDocker) addImageLocked(ref, version string) string {
	if id, ok := d.refs[ref]; ok {
		return id
	}
	d.nextID++
	id := fmt.Sprintf("sha256:%x", sha256.Sum256(fmt.Append(nil, "image", d.nextID)))
	d.images[id] = &fakeImage{ID: id, RepoDigests: []string{ref}, Version: version}
	d.refs[ref] = id
	return id
}

// run adds a running container.
func (d *fakeDocker) run(name, ref string, agent bool) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	img, ok := d.refs[ref]
	if !ok {
		panic("no image " + ref)
	}
	d.nextID++
	id := fmt.Sprintf("%x", sha256.Sum256(fmt.Append(nil, "container", d.nextID)))
	labels := map[string]string{"com.docker.compose.service": "agent"}
	if agent {
		labels[container.ComponentLabel] = container.AgentComponent
	}
	d.containers[id] = &fakeContainer{ID: id, Name: name, Image: img, ImageRef: ref, Labels: labels, Running: true}
	return id
}

func (d *fakeDocker) byNameLocked(name string) *fakeContainer {
	for _, c := range d.containers {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (d *fakeDocker) summary(c *fakeContainer) container.Container {
	out := container.Container{ID: c.ID, Name: c.Name, Image: c.Image, ImageRef: c.ImageRef,
		Labels: maps.Clone(c.Labels), Running: c.Running, State: "exited"}
	if c.Running {
		out.State, out.Health = "running", "healthy"
		if h, ok := d.health[c.ImageRef]; ok {
			out.Health = h
		}
	}
	if img := d.images[c.Image]; img != nil {
		out.Version = img.Version
	}
	return out
}

func (d *fakeDocker) lookupLocked(idOrName string) (*fakeContainer, error) {
	if c, ok := d.containers[idOrName]; ok {
		return c, nil
	}
	if c := d.byNameLocked(idOrName); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("container %q: %w", idOrName, container.ErrNotFound)
}

// guardLocked mirrors container.Client: mutations only touch agents.
func (d *fakeDocker) guardLocked(op, id string) (*fakeContainer, error) {
	if err := d.failOn[op]; err != nil {
		delete(d.failOn, op)
		return nil, err
	}
	c, err := d.lookupLocked(id)
	if err != nil {
		return nil, err
	}
	if c.Labels[container.ComponentLabel] != container.AgentComponent {
		return nil, fmt.Errorf("%s %s: %w", op, c.Name, container.ErrNotAgent)
	}
	d.mutations = append(d.mutations, op+" "+c.Name)
	return c, nil
}

func (d *fakeDocker) Agent(_ context.Context, name string) (container.Container, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.agentCalls++
	c := d.byNameLocked(name)
	if c == nil {
		return container.Container{}, fmt.Errorf("container %q: %w", name, container.ErrNotFound)
	}
	if c.Labels[container.ComponentLabel] != container.AgentComponent {
		return container.Container{}, fmt.Errorf("container %q lacks the label: %w", name, container.ErrNotAgent)
	}
	return d.summary(c), nil
}

func (d *fakeDocker) Agents(_ context.Context) ([]container.Container, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []container.Container
	for _, c := range d.containers {
		if c.Labels[container.ComponentLabel] == container.AgentComponent {
			out = append(out, d.summary(c))
		}
	}
	return out, nil
}

func (d *fakeDocker) Inspect(_ context.Context, idOrName string) (container.Container, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.lookupLocked(idOrName)
	if err != nil {
		return container.Container{}, err
	}
	return d.summary(c), nil
}

func (d *fakeDocker) Pull(_ context.Context, ref string) (container.Image, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.failOn["Pull"]; err != nil {
		delete(d.failOn, "Pull")
		return container.Image{}, err
	}
	v, ok := d.registry[ref]
	if !ok {
		return container.Image{}, fmt.Errorf("pull %s: manifest unknown", ref)
	}
	id := d.addImageLocked(ref, v)
	img := d.images[id]
	digests := img.RepoDigests
	if d.pullDigests != nil {
		digests = d.pullDigests
	}
	return container.Image{ID: id, RepoDigests: digests, Labels: map[string]string{container.VersionLabel: v}}, nil
}

func (d *fakeDocker) Rename(_ context.Context, id, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.guardLocked("Rename", id)
	if err != nil {
		return err
	}
	if other := d.byNameLocked(name); other != nil && other != c {
		return fmt.Errorf("rename: name %q in use", name)
	}
	c.Name = name
	return nil
}

func (d *fakeDocker) CreateLike(_ context.Context, templateID, name, image string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	tpl, err := d.guardLocked("CreateLike", templateID)
	if err != nil {
		return "", err
	}
	if d.byNameLocked(name) != nil {
		return "", fmt.Errorf("create: name %q in use", name)
	}
	img, ok := d.refs[image]
	if !ok {
		return "", fmt.Errorf("create: no image %s", image)
	}
	d.nextID++
	id := fmt.Sprintf("%x", sha256.Sum256(fmt.Append(nil, "container", d.nextID)))
	d.containers[id] = &fakeContainer{ID: id, Name: name, Image: img, ImageRef: image, Labels: maps.Clone(tpl.Labels)}
	return id, nil
}

func (d *fakeDocker) Start(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.guardLocked("Start", id)
	if err != nil {
		return err
	}
	c.Running = true
	return nil
}

func (d *fakeDocker) Stop(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.guardLocked("Stop", id)
	if err != nil {
		return err
	}
	c.Running = false
	return nil
}

func (d *fakeDocker) Remove(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.guardLocked("Remove", id)
	if err != nil {
		return err
	}
	delete(d.containers, c.ID)
	return nil
}

func (d *fakeDocker) RemoveImage(_ context.Context, ref string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := ref
	if rid, ok := d.refs[ref]; ok {
		id = rid
	}
	if _, ok := d.images[id]; !ok {
		return nil
	}
	for _, c := range d.containers {
		if c.Image == id {
			return fmt.Errorf("remove image: %w", container.ErrImageInUse)
		}
	}
	d.mutations = append(d.mutations, "RemoveImage "+id)
	for r, rid := range d.refs {
		if rid == id {
			delete(d.refs, r)
		}
	}
	delete(d.images, id)
	return nil
}

func (d *fakeDocker) Tag(_ context.Context, source, target string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := source
	if rid, ok := d.refs[source]; ok {
		id = rid
	}
	if _, ok := d.images[id]; !ok {
		return fmt.Errorf("tag: no image %s", source)
	}
	d.mutations = append(d.mutations, "Tag "+target)
	d.refs[target] = id
	return nil
}

func (d *fakeDocker) WaitHealthy(ctx context.Context, id string, timeout time.Duration) error {
	d.mu.Lock()
	c, err := d.guardLocked("WaitHealthy", id)
	block := d.blockHealth
	var herr error
	if err == nil {
		herr = d.unhealthy[c.ImageRef]
		if !c.Running {
			herr = &container.UnhealthyError{ID: c.ID, Reason: "exited"}
		}
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return herr
}

// state is a snapshot for assertions: name → "imageRef running|stopped".
func (d *fakeDocker) state() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]string{}
	for _, c := range d.containers {
		st := "stopped"
		if c.Running {
			st = "running"
		}
		out[c.Name] = c.ImageRef + " " + st
	}
	return out
}

func (d *fakeDocker) agents() []*fakeContainer {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*fakeContainer
	for _, c := range d.containers {
		if c.Labels[container.ComponentLabel] == container.AgentComponent {
			cc := *c
			out = append(out, &cc)
		}
	}
	return out
}

func (d *fakeDocker) hasImage(ref string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.refs[ref]
	return ok
}

func (d *fakeDocker) mutationLog() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.mutations)
}

func (d *fakeDocker) changedAnything() bool {
	for _, m := range d.mutationLog() {
		if !strings.HasPrefix(m, "WaitHealthy") {
			return true
		}
	}
	return false
}

// fakeVerifier answers from a function and counts calls.
type fakeVerifier struct {
	mu    sync.Mutex
	fn    func(version, running string) (verify.Verified, error)
	calls []string
}

func (f *fakeVerifier) Verify(_ context.Context, version, running string) (verify.Verified, error) {
	f.mu.Lock()
	fn := f.fn
	f.calls = append(f.calls, version+"<-"+running)
	f.mu.Unlock()
	return fn(version, running)
}

func (f *fakeVerifier) set(fn func(version, running string) (verify.Verified, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fn = fn
}

func (f *fakeVerifier) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// polls returns how many times the updater asked for the agent.
func (d *fakeDocker) polls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.agentCalls
}
