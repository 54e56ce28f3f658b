package faults

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/benchreport"
	"github.com/radarpod/radarpod/internal/dockertest"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/release"
	"github.com/radarpod/radarpod/internal/update/verify"
)

// TestHostileAgent is the "hostile agent" drill: a pod on the real engine,
// deployed as docker-compose.yml deploys it, attacked from inside the
// agent's container (the agent's uid and mounts, no capabilities: what
// someone who took over the agent, through the network it faces or the
// proprietary Ookla CLI it runs, could do) with everything the agent can
// do to what it shares with the updater: remove and recreate the
// directory where the updater's state used to be mounted and forge its
// CRL state and journal; plant a link at the old heartbeat; a FIFO, a
// link, a socket, a directory or a 1 GiB sparse file at the request, the
// status and the test lock; requests naming other repositories. After
// each, the updater must still be running and answering requests, its
// state volume unchanged, and the agent either untouched or replaced by a
// signed, newer agent; the drill ends with a legitimate signed update.
// Shortened (make test) it tries each attack once and the lock attacks
// with one install; at full size (make faults) three rounds, every lock
// shape with its own install.
func TestHostileAgent(t *testing.T) {
	t.Parallel()
	rounds, lockShapes := 1, []string{"fifo"}
	if *fullFlag {
		rounds, lockShapes = 3, []string{"fifo", "symlink", "dangling", "socket", "directory", "sparse"}
	}
	p := dockertest.NewPod(t)
	d := &hostileDrill{t: t, p: p, signed: map[string]bool{}}
	p.RunAgent(d.release("1.0.0", nil))
	p.StartUpdater()
	d.restarts = d.updaterRestarts()

	// A pod with history: a signed update installed, then a leaked
	// signer's release refused once the CRL revokes it.
	d.install("2.0.0")
	d.oldCRL = fetchPublishedCRL(t, p)
	d.leaked = p.PKI.IssueSigner(release.SignerOptions{CommonName: "Leaked Signer", CRLURL: p.PKI.CRL.URL()})
	p.Release("3.0.0", d.leaked)
	p.PKI.Revoke(d.leaked)
	p.Request("3.0.0")
	if st := p.WaitOutcome("3.0.0"); st.State != handoff.StateRefused || !strings.HasPrefix(st.Reason, verify.CodeRevoked+":") {
		t.Fatalf("setup: 3.0.0 by the revoked signer: %+v", st)
	}
	// An unsigned release in the agent repository: what a request the
	// updater should never have read would name.
	p.Publish(p.Repo, "7.7.7", p.AgentImage("7.7.7"))
	d.baseline = p.StateSnapshot()

	for round := range rounds {
		for _, a := range d.attacks(round) {
			d.try(a)
		}
	}
	for i, shape := range lockShapes {
		d.try(d.lockAttack(shape, fmt.Sprintf("5.%d.0", i)))
	}
	// The end: a legitimate signed update installs.
	d.install("6.0.0")

	t.Logf("hostile agent: %d attacks tried, %d survived; installed %v", d.tried, d.survived, d.installed)
	figs := []benchreport.Figure{
		{Name: "faults/hostile_agent/attacks_tried", Value: float64(d.tried), Unit: "attacks",
			Op: ">=", Target: float64(d.planned(rounds, len(lockShapes))),
			Notes: fmt.Sprintf("%d rounds of %d attacks from inside the agent's container on the real engine, and %d test-lock shapes each during an install", rounds, len(d.attacks(0)), len(lockShapes))},
		{Name: "faults/hostile_agent/attacks_survived", Value: float64(d.survived), Unit: "attacks", Op: ">=", Target: float64(d.tried),
			Notes: "the updater kept running and answering, its state volume unchanged, the agent untouched or replaced by a signed newer agent"},
		{Name: "faults/hostile_agent/foreign_installs", Value: float64(d.foreign), Unit: "images", Op: "<=", Target: 0,
			Notes: "agents installed that were not a signed, newer release; ends with a legitimate signed update to " + d.last},
	}
	// A group of its own (bench/out/faults-hostile-agent.json), so that
	// running this drill alone (-run TestHostileAgent -args -faults.full)
	// does not replace the other drills' figures.
	if *fullFlag {
		root, err := proctest.ModuleRoot()
		if err == nil {
			for i := range figs {
				figs[i].Command = "make faults"
			}
			err = benchreport.Write(root, "faults-hostile-agent", figs)
		}
		if err != nil {
			t.Errorf("recording figures: %v", err)
		}
	}
}

type hostileDrill struct {
	t      *testing.T
	p      *dockertest.Pod
	leaked *release.Identity
	oldCRL *x509.RevocationList
	// signed are the versions released by the legitimate signer.
	signed map[string]bool
	// baseline is the updater's state volume when idle.
	baseline map[string]string
	restarts int
	probes   int

	tried, survived, foreign int
	installed                []string
	last                     string
}

type hostileAttack struct {
	name string
	// run attacks; it returns what the agent could not do (informational).
	run func() string
	// after, when set, checks the attack's own outcome (beyond the common
	// checks) and returns what went wrong, "" when nothing.
	after func() string
	// installs: the attack runs during a legitimate install, which
	// changes the state volume (a fresh CRL is fetched and kept).
	installs bool
}

func (d *hostileDrill) release(version string, signer *release.Identity) string {
	if signer == nil {
		d.signed[version] = true
	}
	return d.p.Release(version, signer)
}

// install releases version, signed, requests it and requires it installed.
func (d *hostileDrill) install(version string) {
	d.t.Helper()
	d.release(version, nil)
	d.p.Request(version)
	if st := d.p.WaitOutcome(version); st.State != handoff.StateSucceeded {
		d.t.Fatalf("legitimate signed update to %s: %+v", version, st)
	}
	d.checkAgent(version)
	d.baseline = d.p.StateSnapshot()
}

// checkAgent records the running agent and counts it foreign unless it is
// a signed release, not older than the last one installed.
func (d *hostileDrill) checkAgent(want string) {
	_, v := d.p.Agent()
	if len(d.installed) == 0 || d.installed[len(d.installed)-1] != v {
		d.installed = append(d.installed, v)
		if !d.signed[v] {
			d.foreign++
			d.t.Errorf("agent %s was installed: not a signed release", v)
		}
	}
	d.last = v
	if want != "" && v != want {
		d.t.Errorf("agent runs %s, want %s", v, want)
	}
}

func (d *hostileDrill) updaterRestarts() int {
	c := d.p.Eng.Inspect(d.t.Context(), d.p.UpdaterID)
	if !c.State.Running {
		d.t.Fatalf("the updater is %s", c.State.Status)
	}
	return c.RestartCount
}

// probe asks for a downgrade (refused before any network) and waits for
// the answer: the updater's loop is alive and reads requests.
func (d *hostileDrill) probe() string {
	d.probes++
	v := fmt.Sprintf("0.0.%d", d.probes)
	d.p.Request(v)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		st, ok, err := handoff.ReadStatus(d.p.DataDir)
		if ok && err == nil && st.ToVersion == v && st.State == handoff.StateRefused {
			return ""
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "the updater did not answer a request within a minute"
}

// try runs one attack and the common checks, counting it survived when
// nothing went wrong.
func (d *hostileDrill) try(a hostileAttack) {
	d.t.Helper()
	d.tried++
	note := a.run()
	var wrong []string
	if a.after != nil {
		if w := a.after(); w != "" {
			wrong = append(wrong, w)
		}
	}
	if w := d.probe(); w != "" {
		wrong = append(wrong, w)
	}
	if r := d.updaterRestarts(); r != d.restarts {
		wrong = append(wrong, fmt.Sprintf("the updater restarted (%d times)", r-d.restarts))
		d.restarts = r
	}
	d.checkAgent("")
	if a.installs {
		d.baseline = d.p.StateSnapshot()
	} else if now := d.p.StateSnapshot(); !maps.Equal(now, d.baseline) {
		wrong = append(wrong, fmt.Sprintf("the updater's state changed: %v, was %v", now, d.baseline))
		d.baseline = now
	}
	if len(wrong) > 0 {
		d.t.Errorf("attack %q (%s) not survived: %s", a.name, note, strings.Join(wrong, "; "))
		return
	}
	d.survived++
	d.t.Logf("attack %q survived (%s)", a.name, note)
}

// attack runs the hostile tool in the agent and says what happened.
func (d *hostileDrill) attack(content []byte, args ...string) string {
	ok, out := d.p.Attack(content, args...)
	if !ok {
		return "refused: " + out
	}
	return out
}

// plant is an attack step the agent must be able to do (its own volume,
// its own files): one the kernel refuses means the attack was not tried.
func (d *hostileDrill) plant(content []byte, args ...string) string {
	d.t.Helper()
	ok, out := d.p.Attack(content, args...)
	if !ok {
		d.t.Errorf("the agent could not %v: %s; the attack was not tried", args, out)
	}
	return out
}

// unseen watches the status for a while: no version in versions may show
// up (the updater must not have read a request naming it).
func (d *hostileDrill) unseen(versions ...string) func() string {
	return func() string {
		until := time.Now().Add(3 * time.Second)
		for time.Now().Before(until) {
			if st, ok, _ := handoff.ReadStatus(d.p.DataDir); ok && slices.Contains(versions, st.ToVersion) {
				return fmt.Sprintf("the updater acted on a request it should not have read: %+v", st)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return ""
	}
}

func requestJSON(version string) []byte {
	b, _ := json.Marshal(handoff.Request{Version: version, Source: "channel", RequestedAt: time.Now().UTC()})
	return b
}

const (
	data     = "/data/"
	stateDir = "/var/lib/radar-updater/"
)

// attacks are the attacks on the shared volume; round makes the versions
// the forged requests name differ between rounds.
func (d *hostileDrill) attacks(round int) []hostileAttack {
	p := d.p
	forgedCRLState, _ := json.Marshal(map[string]any{"url": p.PKI.CRL.URL(), "highest_number": d.oldCRL.Number.String(), "crl": d.oldCRL.Raw, "fetched_at": time.Now().UTC()})
	forgedJournal := []byte(`{"phase":"commit","agent_name":"` + p.AgentName + `","old_id":"` + strings.Repeat("a", 64) + `","new_image":"` + p.Repo + `@sha256:` + strings.Repeat("b", 64) + `"}`)
	leakedVersion := fmt.Sprintf("3.%d.1", round)
	var published []byte // the current CRL, served again after the outage
	var out []hostileAttack
	out = append(out, hostileAttack{
		name: "rmdir and recreate the updater's old state mount, forge its CRL state and journal, block the CRL host, announce a revoked signer's release",
		run: func() string {
			notes := []string{
				d.attack(nil, "rmdir", data+"updater-state"),
				d.attack(nil, "mkdir", data+"updater-state"),
				d.plant(forgedCRLState, "write", data+"updater-state/"+verify.CRLStateFile),
				d.plant(forgedJournal, "write", data+"updater-state/updater-journal.json"),
			}
			published = fetchablePEM(d.t, p)
			p.PKI.CRL.Fail(http.StatusServiceUnavailable)
			p.Release(leakedVersion, d.leaked)
			p.Request(leakedVersion)
			return strings.Join(notes, "; ")
		},
		after: func() string {
			defer func() { p.PKI.CRL.Serve(published) }()
			st := p.WaitOutcome(leakedVersion)
			if st.State != handoff.StateRefused || !strings.HasPrefix(st.Reason, verify.CodeRevoked+":") {
				return fmt.Sprintf("the revoked signer's %s: %s %q, want refused %s", leakedVersion, st.State, st.Reason, verify.CodeRevoked)
			}
			return ""
		},
	})
	for _, shape := range []struct{ name, target string }{
		{"into the updater's state (a journal)", stateDir + "updater-journal.json"},
		{"onto the CRL state", stateDir + verify.CRLStateFile},
	} {
		out = append(out, hostileAttack{
			name: "link the old heartbeat " + shape.name,
			run: func() string {
				d.attack(nil, "rm", data+".radar-updater.alive")
				return d.plant(nil, "symlink", shape.target, data+".radar-updater.alive")
			},
			after: func() string { time.Sleep(3 * time.Second); return "" },
		})
	}
	unsigned := "7.7.7"
	for _, plant := range []struct {
		name string
		args []string
		body []byte
	}{
		{"a FIFO at the request", []string{"fifo", data + handoff.RequestFile}, nil},
		{"a 1 GiB sparse request (a valid one at its start)", []string{"sparse", "1073741824", data + handoff.RequestFile}, requestJSON(unsigned)},
		{"a link at the request to a request elsewhere", []string{"symlink", data + "elsewhere/request.json", data + handoff.RequestFile}, nil},
		{"a socket at the request", []string{"socket", data + handoff.RequestFile}, nil},
		{"a directory at the request", []string{"mkdir", data + handoff.RequestFile}, nil},
	} {
		out = append(out, hostileAttack{
			name: plant.name,
			run: func() string {
				d.attack(nil, "mkdir", data+"elsewhere")
				d.plant(requestJSON(unsigned), "write", data+"elsewhere/request.json")
				d.attack(nil, "rm", data+handoff.RequestFile)
				return d.plant(plant.body, plant.args...)
			},
			after: func() string {
				w := d.unseen(unsigned)()
				d.attack(nil, "rm", data+handoff.RequestFile) // the probe needs the name back
				return w
			},
		})
	}
	for _, v := range []string{"evil.example/radar-agent:9.9.9", "9.9.9@sha256:" + strings.Repeat("c", 64), "../radar-updater", "radar-updater"} {
		out = append(out, hostileAttack{
			name: "a request naming " + v,
			run: func() string {
				d.attack(nil, "rm", data+handoff.RequestFile)
				return d.plant(requestJSON(v), "write", data+handoff.RequestFile)
			},
			after: func() string {
				time.Sleep(3 * time.Second)
				if st, ok, _ := handoff.ReadStatus(p.DataDir); ok && st.ToVersion == v && st.State != handoff.StateRefused {
					return fmt.Sprintf("acted on it: %+v", st)
				}
				return ""
			},
		})
	}
	for _, plant := range []struct {
		name string
		args []string
	}{
		{"a link at the status onto the CRL state", []string{"symlink", stateDir + verify.CRLStateFile, data + handoff.StatusFile}},
		{"a dangling link at the status into the state", []string{"symlink", stateDir + "planted", data + handoff.StatusFile}},
		{"a FIFO at the status", []string{"fifo", data + handoff.StatusFile}},
		{"a directory at the status", []string{"mkdir", data + handoff.StatusFile}},
	} {
		out = append(out, hostileAttack{
			name: plant.name,
			run: func() string {
				d.attack(nil, "rm", data+handoff.StatusFile)
				note := d.plant(nil, plant.args...)
				// The status is written on the next change: ask for one.
				d.probes++
				p.Request(fmt.Sprintf("0.0.%d", d.probes))
				time.Sleep(3 * time.Second)
				return note
			},
			after: func() string {
				var w string
				if st, err := os.Lstat(filepath.Join(p.DataDir, handoff.StatusFile)); err == nil && !st.Mode().IsRegular() && !st.IsDir() {
					w = fmt.Sprintf("the status is still a %v after the updater wrote it", st.Mode().Type())
				}
				if st, err := os.Lstat(filepath.Join(p.DataDir, handoff.StatusFile)); err == nil && st.IsDir() {
					d.attack(nil, "rm", data+handoff.StatusFile) // the probe needs the name back
				}
				if _, err := os.Lstat(filepath.Join(p.StateDir, "planted")); err == nil {
					w = "the status was written through the link into the state"
				}
				return w
			},
		})
	}
	return out
}

func (d *hostileDrill) planned(rounds, lockShapes int) int {
	return rounds*len(d.attacks(0)) + lockShapes
}

// lockAttack plants shape at the test lock and requests version, signed:
// the updater must not follow, block on or read it, wait at most twice
// the test timeout, and install.
func (d *hostileDrill) lockAttack(shape, version string) hostileAttack {
	lock := data + handoff.TestLockFile
	args := map[string][]string{
		"fifo":      {"fifo", lock},
		"symlink":   {"symlink", stateDir + verify.CRLStateFile, lock},
		"dangling":  {"symlink", stateDir + "planted-lock", lock},
		"socket":    {"socket", lock},
		"directory": {"mkdir", lock},
		"sparse":    {"sparse", "1073741824", lock},
	}[shape]
	return hostileAttack{
		name:     "a " + shape + " at the test lock during a signed update to " + version,
		installs: true,
		run: func() string {
			d.attack(nil, "rm", lock)
			note := d.plant(nil, args...)
			d.release(version, nil)
			d.p.Request(version)
			return note
		},
		after: func() string {
			defer d.attack(nil, "rm", lock)
			st := d.p.WaitOutcome(version)
			if st.State != handoff.StateSucceeded {
				return fmt.Sprintf("the signed %s: %+v", version, st)
			}
			d.checkAgent(version)
			if _, err := os.Lstat(filepath.Join(d.p.StateDir, "planted-lock")); err == nil {
				return "something was created through the lock's link"
			}
			return ""
		},
	}
}

// fetchPublishedCRL is what anyone can download: the current CRL.
func fetchPublishedCRL(t *testing.T, p *dockertest.Pod) *x509.RevocationList {
	t.Helper()
	blk, _ := pem.Decode(fetchablePEM(t, p))
	if blk == nil {
		t.Fatal("the published CRL is not PEM")
	}
	list, err := x509.ParseRevocationList(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func fetchablePEM(t *testing.T, p *dockertest.Pod) []byte {
	t.Helper()
	resp, err := p.PKI.CRL.Client().Get(p.PKI.CRL.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, verify.MaxCRLSize))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fetch the CRL: %s %v", resp.Status, err)
	}
	return b
}
