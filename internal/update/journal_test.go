package update

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/container"
	"github.com/radarpod/radarpod/internal/handoff"
)

// The journal tells recovery which containers to remove, rename and start.
// A journal this updater could not have written (forged by whoever can
// write the directory, or corrupted) is never acted on: the pod is brought
// to a running agent from what the engine shows, the journal is moved
// aside, and the rejection is reported. Bystanders are never touched.
func TestInvalidJournalIsRejectedAndThePodConverges(t *testing.T) {
	type world struct {
		h        *harness
		postgres string // not an agent
		canary   string // an agent container, but not RADAR_AGENT_CONTAINER
	}
	// crashed leaves what a kill -9 right after the old agent was stopped
	// leaves: the old agent stopped under its temporary name, the new one
	// created (not started) under the agent name, and a real journal.
	crashed := func(t *testing.T) (*world, *Journal) {
		h := newHarness(t)
		w := &world{h: h}
		w.postgres = h.docker.run("postgres", refOf("1.0.0"), false)
		w.canary = h.docker.run(agentName+"-canary", refOf("1.0.0"), true)
		h.start(func(p Phase, after bool) error {
			if p == PhaseStopOld && after {
				return errors.New("kill -9")
			}
			return nil
		})
		h.request("2.0.0")
		h.waitStopped()
		j := h.journal()
		if j == nil || j.Phase != PhaseStopOld || j.NewID == "" {
			t.Fatalf("journal after the crash = %+v", j)
		}
		return w, j
	}
	cases := []struct {
		name   string
		tamper func(w *world, j *Journal)
		raw    string // written instead of the tampered journal when set
		reason string // in the status
	}{
		{name: "unreadable", raw: `{"phase": "commit", "old_id": `, reason: "unexpected end"},
		{name: "unknown phase", tamper: func(_ *world, j *Journal) { j.Phase = "format_disk" }, reason: "unknown phase"},
		{name: "another container name", tamper: func(_ *world, j *Journal) { j.AgentName = "postgres" }, reason: "agent name"},
		{name: "image from another repository", tamper: func(_ *world, j *Journal) {
			j.NewImage = "registry.test/radar/radar-updater@" + j.Digest
		}, reason: "not in the agent repository"},
		{name: "image by tag", tamper: func(_ *world, j *Journal) { j.NewImage = testRepo + ":2.0.0" }, reason: "not pinned by digest"},
		{name: "malformed digest", tamper: func(_ *world, j *Journal) { j.Digest = "sha256:abc" }, reason: "not a sha256 digest"},
		{name: "malformed container ID", tamper: func(_ *world, j *Journal) { j.NewID = "../../postgres" }, reason: "not a container ID"},
		{name: "old container is not an agent", tamper: func(w *world, j *Journal) {
			j.OldID, j.TempName = w.postgres, tempName(agentName, w.postgres)
		}, reason: "not an agent container"},
		{name: "new container is another agent", tamper: func(w *world, j *Journal) { j.NewID = w.canary }, reason: "is not the agent this update created"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, j := crashed(t)
			h := w.h
			raw := []byte(tc.raw)
			if tc.tamper != nil {
				tc.tamper(w, j)
				raw, _ = json.Marshal(j)
			}
			if err := os.WriteFile(filepath.Join(h.stateDir, JournalFile), raw, 0o600); err != nil {
				t.Fatal(err)
			}
			canaryBefore, _ := h.docker.Inspect(context.Background(), w.canary)
			h.forget()
			h.docker.mu.Lock()
			h.docker.mutations = nil
			h.docker.mu.Unlock()
			h.start(nil)
			st := h.waitStatus("the rejection", func(s handoff.Status) bool {
				return s.State == handoff.StateFailed && strings.Contains(s.Reason, "journal rejected")
			})
			h.stop()
			if !strings.Contains(st.Reason, tc.reason) || !strings.Contains(st.Reason, "restored the previous agent") {
				t.Errorf("reason = %q, want it to name %q and the restore", st.Reason, tc.reason)
			}
			// The one agent this updater renamed (its name carries its own
			// ID) is back; the stopped new one is gone.
			as := map[string]bool{}
			for _, a := range h.docker.agents() {
				as[a.Name] = a.Running
			}
			if len(as) != 2 || !as[agentName] || !as[agentName+"-canary"] {
				t.Fatalf("agents after recovery: %v", h.docker.state())
			}
			if a, _ := h.docker.Agent(context.Background(), agentName); a.ID != h.oldID {
				t.Errorf("the agent is %s, want the old one restored", container.ShortID(a.ID))
			}
			for _, m := range h.docker.mutationLog() {
				if strings.Contains(m, "postgres") || strings.Contains(m, "canary") || strings.HasPrefix(m, "RemoveImage") || strings.HasPrefix(m, "Tag") {
					t.Errorf("recovery without a journal did %q", m)
				}
			}
			if c, err := h.docker.Inspect(context.Background(), w.canary); err != nil || c.Name != canaryBefore.Name || !c.Running {
				t.Errorf("canary touched: %+v %v", c, err)
			}
			if _, err := os.Stat(filepath.Join(h.stateDir, JournalFile)); !os.IsNotExist(err) {
				t.Errorf("rejected journal still in place: %v", err)
			}
			kept, _ := filepath.Glob(filepath.Join(h.stateDir, JournalFile+".rejected-*"))
			if len(kept) != 1 {
				t.Errorf("rejected journal not kept for the operator: %v", kept)
			}
		})
	}
}

// A journal forged from scratch to say "commit" — remove the old agent,
// which it names as the running agent, because a "new" one (any other
// agent-labelled container) is healthy — must not remove the running agent.
func TestForgedCommitJournalCannotRemoveTheRunningAgent(t *testing.T) {
	h := newHarness(t)
	canary := h.docker.run(agentName+"-canary", refOf("1.0.0"), true)
	running, _ := h.docker.Agent(context.Background(), agentName)
	j := &Journal{
		Phase: PhaseCommit, AgentName: agentName, TempName: tempName(agentName, running.ID),
		OldID: running.ID, OldImage: running.Image, OldImageRef: "registry.test/radar/radar-updater:latest", OldVersion: "1.0.0",
		NewID: canary, NewImage: refOf("1.0.0"), NewVersion: "9.0.0", Digest: digestOf("1.0.0"), Attempt: 1,
	}
	if err := j.validate(agentName, testRepo); err != nil {
		t.Fatalf("test setup: the forgery must pass the static checks: %v", err)
	}
	if err := writeJournal(openState(t, h.stateDir), j); err != nil {
		t.Fatal(err)
	}
	h.start(nil)
	st := h.waitStatus("the rejection", func(s handoff.Status) bool { return s.State == handoff.StateFailed })
	h.stop()
	if !strings.Contains(st.Reason, "journal rejected") || !strings.Contains(st.Reason, "kept the running agent") {
		t.Errorf("reason = %q", st.Reason)
	}
	if m := h.docker.mutationLog(); len(m) != 0 {
		t.Fatalf("a forged journal made the updater act: %v", m)
	}
	h.onlyAgentAmong("1.0.0", agentName+"-canary")
}

// Only a tag in the agent repository is re-pointed at the installed image:
// an agent run from anywhere else (a local build, or what a forged journal
// names) is not a reference the updater may move.
func TestUpdateDoesNotRetagOutsideTheAgentRepository(t *testing.T) {
	h := newHarness(t)
	const foreign = "registry.test/radar/radar-updater:latest"
	h.runOldAgentFrom(foreign)
	h.start(nil)
	h.request("2.0.0")
	h.waitState(handoff.StateSucceeded)
	if slices.ContainsFunc(h.docker.mutationLog(), func(m string) bool { return strings.HasPrefix(m, "Tag") }) {
		t.Fatalf("re-pointed a reference outside the agent repository: %v", h.docker.mutationLog())
	}
}

// onlyAgentAmong is onlyAgent with other agent-labelled containers allowed
// (named in others): RADAR_AGENT_CONTAINER runs version, alone under it.
func (h *harness) onlyAgentAmong(version string, others ...string) {
	h.t.Helper()
	for _, a := range h.docker.agents() {
		if slices.Contains(others, a.Name) {
			continue
		}
		if a.Name != agentName || !a.Running || a.ImageRef != refOf(version) {
			h.t.Fatalf("agent %s %s running=%v, want %s running %s (all: %v)", a.Name, a.ImageRef, a.Running, agentName, refOf(version), h.docker.state())
		}
	}
	if a, err := h.docker.Agent(context.Background(), agentName); err != nil || !a.Running {
		h.t.Fatalf("no running agent: %v", err)
	}
}

func TestJournalValidateAcceptsWhatTheUpdaterWrites(t *testing.T) {
	id := strings.Repeat("ab", 32)
	j := Journal{
		Phase: PhaseHealth, AgentName: agentName, TempName: tempName(agentName, id), OldID: id,
		OldImage: digestOf("img"), OldImageRef: "radar-agent:latest", OldVersion: "1.0.0",
		NewID: strings.Repeat("cd", 32), NewImage: refOf("2.0.0"), NewVersion: "v2.0.0", Digest: digestOf("2.0.0"),
		Reason: "wait_healthy: container not healthy", Attempt: 3,
	}
	if err := j.validate(agentName, testRepo); err != nil {
		t.Fatal(err)
	}
	j.NewVersion = "2.0.0\n{\"x\":1}"
	if err := j.validate(agentName, testRepo); err == nil {
		t.Fatal("a version with a newline was accepted")
	}
}
