package memtrim

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// releaseExecutable drops the page-table entries of every read-only
// mapping of the running executable that holds only page-cache pages,
// with madvise(MADV_DONTNEED): the next access maps them again from the
// cache (or reads the file, which the kernel keeps from being written
// while it runs: ETXTBSY). A mapping with private pages is skipped, for
// DONTNEED would discard them and the file's contents would come back in
// their place: writable mappings (.data, .bss), and read-only ones that
// were written before being made read-only (RELRO: a dynamically linked
// test binary's relocated GOT). The static release binaries have none of
// the latter, and nothing writes such a mapping once the program runs.
func releaseExecutable() error {
	st, err := os.Stat("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("memtrim: executable: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	maps, err := cleanReadOnlyMappings("/proc/self/smaps", sys.Ino)
	if err != nil {
		return err
	}
	for _, m := range maps {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("memtrim: madvise %#x-%#x: %w", m.start, m.end, errno)
		}
	}
	return nil
}

// mapping is one address range of /proc/<pid>/smaps.
type mapping struct{ start, end uintptr }

// cleanReadOnlyMappings reads the read-only (no "w") mappings of the file
// with inode ino from an smaps file that hold no private page (Anonymous:
// 0 kB). A mapping whose Anonymous line is missing is not taken.
func cleanReadOnlyMappings(path string, ino uint64) ([]mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("memtrim: %w", err)
	}
	defer f.Close()
	var out []mapping
	var cur *mapping // a candidate whose Anonymous line is still to come
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == "Anonymous:" {
			if cur != nil && fields[1] == "0" {
				out = append(out, *cur)
			}
			cur = nil
			continue
		}
		if len(fields) < 5 || strings.HasSuffix(fields[0], ":") {
			continue // another detail line ("Rss:  4 kB", "VmFlags: rd ex")
		}
		// A mapping's header: range perms offset dev inode [path].
		cur = nil
		lo, hi, ok := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		inode, err3 := strconv.ParseUint(fields[4], 10, 64)
		if !ok || err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("memtrim: %s: unexpected line %q", path, sc.Text())
		}
		if inode == ino && !strings.Contains(fields[1], "w") {
			cur = &mapping{start: uintptr(start), end: uintptr(end)}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("memtrim: %s: %w", path, err)
	}
	return out, nil
}
