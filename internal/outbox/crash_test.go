package outbox

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash test re-executes this test binary as a child that Puts (and,
// like the uploader, Removes) in a loop, kills it with SIGKILL at random
// moments and checks the store after every kill. The child reports on
// stdout only what its calls returned, so the parent knows exactly what the
// store promised.
const (
	crashEnvDir = "OUTBOX_CRASH_CHILD_DIR"
	crashEnvGen = "OUTBOX_CRASH_CHILD_GEN"
	// Bound of the child's store: about a dozen average records, so kills
	// also land in evictions.
	crashMaxBytes = 512 << 10
)

// crashRecord is the record the child Puts as number n of generation gen:
// deterministic, so the parent can check every byte.
func crashRecord(gen, n int) Record {
	rng := rand.New(rand.NewPCG(uint64(gen), uint64(n)))
	payload := make([]byte, 1000+rng.IntN(160_000))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	return Record{
		// Backwards in time: ordering must not care.
		CreatedAt:  time.Unix(2_000_000_000-int64(gen*100_000+n), int64(n)),
		Runner:     "ndt7",
		Style:      "NDT7",
		Interface:  fmt.Sprintf("g%d-n%d", gen, n),
		Wireless:   n%2 == 0,
		ErrorClass: "",
		Result:     payload,
	}
}

// TestCrashChild is the child's body; it does nothing unless started by
// TestKill9NeverLosesOrTearsARecord.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		return
	}
	gen, _ := strconv.Atoi(os.Getenv(crashEnvGen))
	say := func(format string, args ...any) {
		// One write per line: a pipe keeps writes below PIPE_BUF whole even
		// when the writer dies right after.
		os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n")
	}
	s, err := Open(Options{Dir: dir, MaxBytes: crashMaxBytes, OnEvict: func(e Eviction) { say("E %s %s", e.ID, e.Reason) }})
	if err != nil {
		say("X open: %v", err)
		os.Exit(3)
	}
	say("ready")
	go func() { // the uploader: delivers oldest first, but lags behind
		for {
			if s.Stats().Records < 5 {
				time.Sleep(time.Millisecond)
				continue
			}
			r, ok, err := s.Oldest()
			if err != nil {
				say("X oldest: %v", err)
				os.Exit(3)
			}
			if ok {
				say("r %s", r.ID) // removal may happen from here on
				if err := s.Remove(r.ID); err != nil {
					say("X remove: %v", err)
					os.Exit(3)
				}
				say("R %s", r.ID)
			}
		}
	}()
	// Bounded, in case the parent dies without killing us.
	for n := 0; n < 100_000; n++ {
		r, err := s.Put(crashRecord(gen, n))
		if err != nil {
			say("X put: %v", err)
			os.Exit(3)
		}
		say("S %s %d %d", r.ID, gen, n)
	}
	os.Exit(0)
}

type crashLedger struct {
	stored     map[string][2]int // id → gen, n
	removing   map[string]bool   // Remove called, maybe not returned
	removed    map[string]bool
	evicted    map[string]bool
	maxID      string
	tornWrites int // temp files found after a kill: kills that hit a write
}

func TestKill9NeverLosesOrTearsARecord(t *testing.T) {
	const kills = 100
	dir := t.TempDir()
	led := crashLedger{stored: map[string][2]int{}, removing: map[string]bool{}, removed: map[string]bool{}, evicted: map[string]bool{}}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	totalStored := 0
	for gen := 0; gen < kills; gen++ {
		lines := runAndKill(t, dir, gen, rng)
		genMin := ""
		for _, l := range lines {
			f := strings.Fields(l)
			switch {
			case len(f) >= 2 && f[0] == "X":
				t.Fatalf("generation %d: child failed: %s", gen, l)
			case len(f) == 4 && f[0] == "S":
				g, _ := strconv.Atoi(f[2])
				n, _ := strconv.Atoi(f[3])
				led.stored[f[1]] = [2]int{g, n}
				totalStored++
				if genMin == "" || f[1] < genMin {
					genMin = f[1]
				}
			case len(f) == 2 && f[0] == "r":
				led.removing[f[1]] = true
			case len(f) == 2 && f[0] == "R":
				led.removed[f[1]] = true
			case len(f) == 3 && f[0] == "E":
				led.evicted[f[1]] = true
			}
		}
		if genMin != "" && genMin <= led.maxID {
			t.Fatalf("generation %d handed out ID %s, not after every earlier ID (max %s)", gen, genMin, led.maxID)
		}
		led.verify(t, dir, gen)
	}
	t.Logf("%d kills (%d mid-write), %d records reported stored, %d removed, %d evicted",
		kills, led.tornWrites, totalStored, len(led.removed), len(led.evicted))
	if totalStored < kills/2 {
		t.Fatalf("only %d Puts completed over %d runs: the kills did not exercise writing", totalStored, kills)
	}
}

// runAndKill starts a child on dir and SIGKILLs it at a random moment:
// mostly while it writes, sometimes while it opens the store.
func runAndKill(t *testing.T, dir string, gen int, rng *rand.Rand) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvGen+"="+strconv.Itoa(gen))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var got []string
	if gen%5 == 4 {
		// Kill during start-up (CleanTemp, verification, Open-time evictions).
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
	} else {
		deadline := time.After(time.Minute)
	wait:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break wait
				}
				got = append(got, l)
				if l == "ready" {
					break wait
				}
			case <-deadline:
				cmd.Process.Kill()
				t.Fatalf("generation %d: child never became ready", gen)
			}
		}
		time.Sleep(time.Duration(rng.IntN(100_000)) * time.Microsecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill: %v", err)
	}
	for l := range lines {
		got = append(got, l)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("generation %d: child ended with %v, not by our SIGKILL: %q", gen, err, got)
	}
	return got
}

// verify reopens the store the way a restarted agent would and checks the
// ledger against it.
func (led *crashLedger) verify(t *testing.T, dir string, gen int) {
	t.Helper()
	led.tornWrites += len(tempLeftovers(t, dir))
	var log evictLog
	s, err := Open(Options{Dir: dir, MaxBytes: crashMaxBytes, OnEvict: log.add})
	if err != nil {
		t.Fatalf("generation %d: Open after kill: %v", gen, err)
	}
	defer s.Close()
	for _, e := range log.all() {
		if e.Reason == ReasonCorrupt {
			t.Fatalf("generation %d: torn or corrupt record visible after kill: %+v", gen, e)
		}
		// A kill between a Put's write and its evictions leaves the store
		// over its bound; Open finishes the job and reports it.
		led.evicted[e.ID] = true
	}
	if left := tempLeftovers(t, dir); len(left) != 0 {
		t.Fatalf("generation %d: temp leftovers after Open: %v", gen, left)
	}
	present := map[string]bool{}
	for _, m := range s.List() {
		present[m.ID] = true
		if m.ID > led.maxID {
			led.maxID = m.ID
		}
	}
	vanished := 0
	for id, gn := range led.stored {
		if id > led.maxID {
			led.maxID = id
		}
		switch {
		case led.removed[id] || led.evicted[id]:
			if present[id] {
				t.Fatalf("generation %d: record %s came back after Remove/eviction returned", gen, id)
			}
		case present[id]:
			r, err := s.Get(id)
			if err != nil {
				t.Fatalf("generation %d: Get(%s): %v", gen, id, err)
			}
			want := crashRecord(gn[0], gn[1])
			want.ID = id
			want.CreatedAt = want.CreatedAt.UTC()
			checkEqual(t, r, want)
		case led.removing[id]:
			// Removed, killed before reporting it.
		default:
			// Put returned, then the record was evicted before the child
			// could report it: allowed only if the persisted counter
			// accounts for it (checked below).
			vanished++
		}
	}
	// Records on disk that the child never reported are Puts killed between
	// their write and their report; they must be intact too.
	for id := range present {
		if _, ok := led.stored[id]; ok {
			continue
		}
		r, err := s.Get(id)
		if err != nil {
			t.Fatalf("generation %d: unreported record %s unreadable: %v", gen, id, err)
		}
		var g, n int
		if _, err := fmt.Sscanf(r.Interface, "g%d-n%d", &g, &n); err != nil || g > gen {
			t.Fatalf("generation %d: record %s is not one the child wrote: %q", gen, id, r.Interface)
		}
		want := crashRecord(g, n)
		want.ID = id
		want.CreatedAt = want.CreatedAt.UTC()
		checkEqual(t, r, want)
		led.stored[id] = [2]int{g, n} // it is a promise now
	}
	st := s.Stats()
	if reported := int64(len(led.evicted)); st.Evictions < reported+int64(vanished) {
		t.Fatalf("generation %d: %d evictions persisted, but %d were reported and %d records vanished unreported",
			gen, st.Evictions, reported, vanished)
	}
	if st.Bytes > crashMaxBytes {
		t.Fatalf("generation %d: %d bytes stored, bound %d", gen, st.Bytes, crashMaxBytes)
	}
}
