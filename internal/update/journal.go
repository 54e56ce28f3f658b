package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/distribution/reference"

	"github.com/radarpod/radarpod/internal/container"
	"github.com/radarpod/radarpod/internal/update/statedir"
)

// JournalFile is the replacement journal in the updater's state directory
// (RADAR_UPDATER_STATE_DIR). It exists only while a replacement (or its
// rollback) is under way.
//
// The issue asks for "a journal in the data dir": that is the updater's own
// data, kept in its own directory rather than the volume it shares with the
// agent, because both containers run as the same uid and a compromised agent
// could otherwise write the journal that tells the updater which containers
// to remove, rename and start. Compose mounts a volume there that only the
// updater sees, outside the shared one (see statedir); whatever the journal
// says is still validated (validate, checkAgainstEngine) before recovery
// acts on it, since a journal taken over from the legacy location (see
// migrateLegacyState) was within the agent's reach.
const JournalFile = "updater-journal.json"

// Phase is the step of a replacement the journal was written before.
type Phase string

// Phases in order. Each is recorded before its step runs, so after a crash
// the journal names the step that may or may not have happened, and
// recovery inspects the engine to find out.
const (
	PhaseRename   Phase = "rename_old"   // old agent → temporary name
	PhaseCreate   Phase = "create_new"   // new container under the agent name
	PhaseStopOld  Phase = "stop_old"     // stop the old agent
	PhaseStartNew Phase = "start_new"    // start the new agent
	PhaseHealth   Phase = "wait_healthy" // wait for Docker to call it healthy
	PhaseCommit   Phase = "commit"       // remove the old agent and its image
	PhaseRollback Phase = "rollback"     // remove the new, restore and start the old
)

// Phases lists the replacement phases in order (tests crash at each).
var Phases = []Phase{PhaseRename, PhaseCreate, PhaseStopOld, PhaseStartNew, PhaseHealth, PhaseCommit, PhaseRollback}

// Journal records one replacement. Containers are identified by ID; names
// are what the replacement changes.
type Journal struct {
	Phase Phase `json:"phase"`
	// AgentName is RADAR_AGENT_CONTAINER; TempName what the old agent is
	// renamed to while the new one takes its name.
	AgentName string `json:"agent_name"`
	TempName  string `json:"temp_name"`

	OldID    string `json:"old_id"`
	OldImage string `json:"old_image"` // image ID, pruned after success
	// OldImageRef is the reference the old agent was created from (the
	// compose file's image); after success it is pointed at the new image.
	OldImageRef string `json:"old_image_ref,omitempty"`
	OldVersion  string `json:"old_version"`

	// NewID is empty until the create step returned; recovery then finds
	// the new container by name and image reference.
	NewID      string `json:"new_id,omitempty"`
	NewImage   string `json:"new_image"` // repo@sha256:… it is created from
	NewVersion string `json:"new_version"`
	Digest     string `json:"digest"`

	// Reason is why a rollback runs.
	Reason string `json:"reason,omitempty"`

	Attempt     int       `json:"attempt"`
	RequestedAt time.Time `json:"requested_at,omitzero"`
	StartedAt   time.Time `json:"started_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func writeJournal(state *statedir.Dir, j *Journal) error {
	j.UpdatedAt = time.Now().UTC()
	if err := state.WriteJSON(JournalFile, j, 0o600); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// maxJournalSize bounds what is read: a journal is well under a kilobyte.
const maxJournalSize = 64 << 10

// errJournalInvalid marks a journal recovery must not act on: unreadable,
// or naming something this updater would never have written. Recovery then
// converges from what the engine shows instead (convergeWithoutJournal).
var errJournalInvalid = errors.New("invalid update journal")

// readJournal returns the journal, or nil when no replacement is under way.
// A journal that is unreadable or fails validate is an errJournalInvalid.
func readJournal(state *statedir.Dir, agentName, repository string) (*Journal, error) {
	b, err := state.ReadFile(JournalFile, maxJournalSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.Is(err, statedir.ErrChanged):
		return nil, err
	case err != nil:
		// Too large, not a regular file: not a journal this updater wrote.
		return nil, fmt.Errorf("%w: %w", errJournalInvalid, err)
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errJournalInvalid, filepath.Join(state.Path(), JournalFile), err)
	}
	if err := j.validate(agentName, repository); err != nil {
		return nil, fmt.Errorf("%w: %w", errJournalInvalid, err)
	}
	return &j, nil
}

// validate checks that j is a journal this updater could have written for
// this pod: its own container name, container and image IDs and digests in
// their exact formats, images only from the configured agent repository,
// and a known phase. It does not ask the engine; checkAgainstEngine does.
func (j *Journal) validate(agentName, repository string) error {
	switch {
	case !slices.Contains(Phases, j.Phase):
		return fmt.Errorf("unknown phase %q", j.Phase)
	case j.AgentName != agentName:
		return fmt.Errorf("agent name %q, not the configured %q", j.AgentName, agentName)
	case !isContainerID(j.OldID):
		return fmt.Errorf("old container ID %q is not a container ID", j.OldID)
	case j.TempName != tempName(agentName, j.OldID):
		return fmt.Errorf("temporary name %q, not %q", j.TempName, tempName(agentName, j.OldID))
	case j.NewID != "" && !isContainerID(j.NewID):
		return fmt.Errorf("new container ID %q is not a container ID", j.NewID)
	case j.NewID == j.OldID:
		return errors.New("old and new container are the same")
	case j.OldImage != "" && !isSHA256(j.OldImage):
		return fmt.Errorf("old image %q is not an image ID", j.OldImage)
	case !isSHA256(j.Digest):
		return fmt.Errorf("digest %q is not a sha256 digest", j.Digest)
	case j.Attempt < 0:
		return fmt.Errorf("attempt %d", j.Attempt)
	}
	named, err := reference.ParseNormalizedNamed(j.NewImage)
	if err != nil {
		return fmt.Errorf("new image %q: %w", j.NewImage, err)
	}
	canonical, ok := named.(reference.Canonical)
	if !ok || reference.IsNameOnly(named) {
		return fmt.Errorf("new image %q is not pinned by digest", j.NewImage)
	}
	if _, tagged := named.(reference.Tagged); tagged {
		return fmt.Errorf("new image %q carries a tag beside its digest", j.NewImage)
	}
	if named.Name() != repository {
		return fmt.Errorf("new image %q is not in the agent repository %s", j.NewImage, repository)
	}
	if canonical.Digest().String() != j.Digest {
		return fmt.Errorf("new image %q does not carry the journal's digest %s", j.NewImage, j.Digest)
	}
	if j.OldImageRef != "" {
		if _, err := reference.ParseNormalizedNamed(j.OldImageRef); err != nil {
			return fmt.Errorf("old image reference %q: %w", j.OldImageRef, err)
		}
	}
	for name, v := range map[string]string{"old version": j.OldVersion, "new version": j.NewVersion} {
		if len(v) > 128 || strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 {
			return fmt.Errorf("%s %q is not a version", name, v)
		}
	}
	if len(j.Reason) > 4096 {
		return fmt.Errorf("reason of %d bytes", len(j.Reason))
	}
	return nil
}

// tempName is what the old agent is called while the new one holds its
// name: derived from its ID, so recovery can recognise it without a journal.
func tempName(agentName, oldID string) string {
	return agentName + "-old-" + container.ShortID(oldID)
}

// isContainerID reports whether s is a full container ID (64 lowercase hex).
func isContainerID(s string) bool { return len(s) == 64 && isLowerHex(s) }

// isSHA256 reports whether s is "sha256:" and 64 lowercase hex digits (an
// image ID or a manifest digest).
func isSHA256(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	return ok && len(h) == 64 && isLowerHex(h)
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func removeJournal(state *statedir.Dir) error {
	if err := state.Remove(JournalFile); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// quarantineJournal moves a journal recovery will not act on aside, so the
// loop does not trip over it forever while an operator can still read it.
// It returns the new path.
func quarantineJournal(state *statedir.Dir) (string, error) {
	q, err := state.MoveAside(JournalFile, ".rejected-"+time.Now().UTC().Format("20060102T150405.000Z"))
	switch {
	case err != nil:
		return "", fmt.Errorf("move the journal aside: %w", err)
	case q == "":
		return "(already gone)", nil
	}
	return q, nil
}
