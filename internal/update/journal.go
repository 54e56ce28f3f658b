package update

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/radarpod/radarpod/internal/atomicfile"
)

// JournalFile is the replacement journal in the data directory. It exists
// only while a replacement (or its rollback) is under way.
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

func journalPath(dataDir string) string { return filepath.Join(dataDir, JournalFile) }

func writeJournal(dataDir string, j *Journal) error {
	j.UpdatedAt = time.Now().UTC()
	if err := atomicfile.WriteJSON(journalPath(dataDir), j, 0o600); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// readJournal returns the journal, or nil when no replacement is under way.
func readJournal(dataDir string) (*Journal, error) {
	var j Journal
	err := atomicfile.ReadJSON(journalPath(dataDir), &j)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if j.OldID == "" || j.AgentName == "" || j.Phase == "" {
		return nil, fmt.Errorf("journal: incomplete record (phase %q)", j.Phase)
	}
	return &j, nil
}

func removeJournal(dataDir string) error {
	if err := atomicfile.Remove(journalPath(dataDir)); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// quarantineJournal moves an unreadable journal aside so the loop does not
// trip over it forever; an operator can still read it.
func quarantineJournal(dataDir string) error {
	p := journalPath(dataDir)
	return os.Rename(p, p+".corrupt-"+time.Now().UTC().Format("20060102T150405Z"))
}
