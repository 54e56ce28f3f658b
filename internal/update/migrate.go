package update

import (
	"errors"
	"io/fs"
	"path"
	"time"

	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/update/verify"
)

// CRLStateMerger takes over the CRL state an older updater kept in the
// legacy location; *verify.Verifier implements it (see
// verify.Verifier.MergeLegacyCRLState for what it trusts).
type CRLStateMerger interface {
	MergeLegacyCRLState(raw []byte) (note string, err error)
}

// LegacyMigrationFile, in the state directory, records that the legacy
// state was taken over, so it is done on the first start only: after that
// the legacy location is a plain directory of the agent's volume, and
// anything appearing there is the agent's.
const LegacyMigrationFile = "legacy-state-migrated.json"

type legacyMigration struct {
	MigratedAt time.Time `json:"migrated_at"`
	From       string    `json:"from"`
	Notes      []string  `json:"notes"`
}

// migrateLegacyState takes over, once, the state an older updater kept at
// RADAR_DATA_DIR/updater-state (Options.LegacyStateDir), with no operator
// action.
//
// On pods that also took the new compose file, the state volume (same
// name) is now mounted at the new location and already holds the genuine
// state; the legacy path is then a plain directory of the shared volume
// (the old mount point), empty unless the agent wrote there. On pods that
// run the new image with the old compose file, the legacy path is still
// the state volume's mount and holds the genuine state. The updater
// cannot tell these apart, and in both cases the agent could have written
// what is there (it could rmdir the mount point and recreate it), so what
// is taken over is only what cannot weaken the updater:
//
//   - the journal, only when no journal of ours exists, and it is then
//     what a journal always is: validated (validate) and checked against
//     the engine (checkAgainstEngine) before recovery acts on it; a
//     rejected one is moved aside and the pod converges from what the
//     engine shows alone. Not taking it over would leave an interrupted
//     replacement (an agent renamed away) unrecovered.
//   - the CRL state, through CRLStateMerger: the highest CRL number only
//     moves up, and only to the number of a CRL the pinned root signed; a
//     cached CRL only when it is newer than a number we already hold.
//   - the heartbeat: not at all (it is rewritten within seconds).
//
// Every file is read as hostile (handoff.ReadFile: no link followed, no
// FIFO blocking, regular files under a size cap), and nothing is written
// into the legacy directory. A failure to write our own state leaves the
// migration for the next start (the journal is taken over last, so that
// it is not taken twice).
func (u *Updater) migrateLegacyState() {
	if u.o.LegacyStateDir == "" {
		return
	}
	log := u.log.With("legacy_dir", path.Join(u.o.DataDir, u.o.LegacyStateDir))
	done, err := u.state.Exists(LegacyMigrationFile)
	if err != nil {
		log.Error("cannot tell whether the legacy updater state was migrated; trying at the next start", "err", err)
		return
	}
	if done {
		return
	}
	var notes []string
	read := func(name string, max int64) ([]byte, bool) {
		b, err := handoff.ReadFile(u.o.DataDir, path.Join(u.o.LegacyStateDir, name), max)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, false
		case err != nil:
			notes = append(notes, "legacy "+name+" ignored: "+err.Error())
			return nil, false
		}
		return b, true
	}
	if u.o.CRLState != nil {
		if raw, ok := read(verify.CRLStateFile, verify.MaxCRLStateSize); ok {
			note, err := u.o.CRLState.MergeLegacyCRLState(raw)
			if err != nil {
				log.Error("legacy CRL state not migrated; trying at the next start", "err", err)
				return
			}
			notes = append(notes, note)
		}
	}
	if raw, ok := read(JournalFile, maxJournalSize); ok {
		have, err := u.state.Exists(JournalFile)
		if err != nil {
			log.Error("legacy updater state not migrated; trying at the next start", "err", err)
			return
		}
		if have {
			notes = append(notes, "legacy journal ignored: a journal of our own is in place")
		} else {
			if err := u.state.Write(JournalFile, raw, 0o600); err != nil {
				log.Error("legacy updater state not migrated; trying at the next start", "err", err)
				return
			}
			notes = append(notes, "legacy journal taken over; it is validated against the engine before recovery acts on it")
		}
	}
	if len(notes) == 0 {
		notes = append(notes, "no legacy state found")
	}
	rec := legacyMigration{MigratedAt: time.Now().UTC(), From: path.Join(u.o.DataDir, u.o.LegacyStateDir), Notes: notes}
	if err := u.state.WriteJSON(LegacyMigrationFile, rec, 0o600); err != nil {
		log.Error("cannot record the legacy state migration; it is repeated at the next start", "err", err)
		return
	}
	log.Info("legacy updater state migrated", "notes", notes)
}
