package memtrim

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestCleanReadOnlyMappings(t *testing.T) {
	const smaps = `00400000-00a6e000 r-xp 00000000 fe:00 42                               /radar-agent
Size:               6584 kB
Rss:                6136 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00a6e000-0117c000 r--p 0066e000 fe:00 42                               /radar-agent
Rss:                6260 kB
Anonymous:             0 kB
0117c000-0122f000 rw-p 00d7c000 fe:00 42                               /radar-agent
Rss:                 652 kB
Anonymous:           600 kB
0122f000-03275000 rw-p 00000000 00:00 0 
Rss:                 176 kB
Anonymous:           176 kB
b6f00000-b6f01000 r--p 00000000 fe:00 43                               /lib/other.so
Rss:                   4 kB
Anonymous:             0 kB
b6f01000-b6f02000 r--p 00001000 fe:00 43                               /lib/other.so
Rss:                   4 kB
Anonymous:             4 kB
b6f02000-b6f03000 r--p 00002000 fe:00 43                               /lib/other.so
Rss:                   4 kB
`
	path := filepath.Join(t.TempDir(), "smaps")
	if err := os.WriteFile(path, []byte(smaps), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ino  uint64
		want []mapping
	}{
		{"text and rodata, not data", 42, []mapping{{0x400000, 0xa6e000}, {0xa6e000, 0x117c000}}},
		// The second is RELRO-like (written, then made read-only); the
		// third says nothing of its private pages.
		{"only clean read-only mappings", 43, []mapping{{0xb6f00000, 0xb6f01000}}},
		{"no such file", 44, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cleanReadOnlyMappings(path, tt.ino)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("mapping %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestCleanReadOnlyMappingsRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "smaps")
	if err := os.WriteFile(path, []byte("zz-00a6e000 r-xp 00000000 fe:00 42 /x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cleanReadOnlyMappings(path, 42); err == nil {
		t.Fatal("a malformed line was accepted")
	}
}

// TestReleaseUnmapsExecutable runs Release on this test binary: its
// read-only mappings lose most of their resident pages, its writable ones
// keep theirs, and the code keeps running (it is mapped back on demand).
func TestReleaseUnmapsExecutable(t *testing.T) {
	st, err := os.Stat("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	ino := st.Sys().(*syscall.Stat_t).Ino
	roBefore, rwBefore := residentKiB(t, ino)
	if err := Release(); err != nil {
		t.Fatal(err)
	}
	roAfter, rwAfter := residentKiB(t, ino)
	t.Logf("test binary resident: read-only %d -> %d KiB, writable %d -> %d KiB", roBefore, roAfter, rwBefore, rwAfter)
	if roBefore == 0 {
		t.Fatal("no resident read-only mapping of the test binary in /proc/self/smaps")
	}
	if roAfter >= roBefore*3/4 {
		t.Errorf("read-only mappings still hold %d of %d KiB after Release", roAfter, roBefore)
	}
	if rwAfter < rwBefore {
		t.Errorf("writable mappings lost pages: %d -> %d KiB", rwBefore, rwAfter)
	}
}

// residentKiB sums the Rss of this process's mappings of inode ino, read-only and writable.
func residentKiB(t *testing.T, ino uint64) (ro, rw int64) {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cur *int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && !strings.HasSuffix(fields[0], ":"):
			cur = nil
			if fields[4] == strconv.FormatUint(ino, 10) {
				cur = &ro
				if strings.Contains(fields[1], "w") {
					cur = &rw
				}
			}
		case cur != nil && len(fields) == 3 && fields[0] == "Rss:":
			n, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			*cur += n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ro, rw
}
