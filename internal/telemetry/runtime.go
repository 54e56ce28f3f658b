package telemetry

import (
	"bytes"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"syscall"
	"time"
)

// processStart stands for the process's start time: package
// initialisation runs within milliseconds of it.
var processStart = time.Now()

// addRuntime registers the Go runtime and process series an operator
// watches a pod's health by (memory, CPU, goroutines, descriptors), under
// the names client_golang's Go and process collectors gave them. Each is
// read at scrape time; one that cannot be read (no /proc) is left out of
// that scrape rather than reported as 0.
func (r *registry) addRuntime() {
	readRuntime := func(name string) (float64, bool) {
		s := []metrics.Sample{{Name: name}}
		metrics.Read(s)
		switch s[0].Value.Kind() {
		case metrics.KindUint64:
			return float64(s[0].Value.Uint64()), true
		case metrics.KindFloat64:
			return s[0].Value.Float64(), true
		}
		return 0, false
	}
	fromRuntime := func(name, help, kind, sample string) {
		r.add(name, help, kind, func(emit func([]string, []string, float64)) {
			if v, ok := readRuntime(sample); ok {
				emit(nil, nil, v)
			}
		})
	}
	fromFunc := func(name, help, kind string, read func() (float64, bool)) {
		r.add(name, help, kind, func(emit func([]string, []string, float64)) {
			if v, ok := read(); ok {
				emit(nil, nil, v)
			}
		})
	}
	version := runtime.Version()
	r.add("go_info", "Information about the Go environment.", "gauge", func(emit func([]string, []string, float64)) {
		emit([]string{"version"}, []string{version}, 1)
	})
	fromRuntime("go_goroutines", "Number of goroutines that currently exist.", "gauge", "/sched/goroutines:goroutines")
	fromRuntime("go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects.", "gauge", "/memory/classes/heap/objects:bytes")
	fromRuntime("go_memstats_sys_bytes", "Bytes of memory obtained from the OS by the Go runtime.", "gauge", "/memory/classes/total:bytes")
	fromRuntime("go_gc_cycles_total", "Completed GC cycles.", "counter", "/gc/cycles/total:gc-cycles")

	fromFunc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", func() (float64, bool) {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0, false
		}
		return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9, true
	})
	fromFunc("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", func() (float64, bool) { return statm(1) })
	fromFunc("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", func() (float64, bool) { return statm(0) })
	fromFunc("process_open_fds", "Number of open file descriptors.", "gauge", func() (float64, bool) {
		d, err := os.Open("/proc/self/fd")
		if err != nil {
			return 0, false
		}
		defer d.Close()
		names, err := d.Readdirnames(-1)
		if err != nil {
			return 0, false
		}
		return float64(len(names) - 1), true // less the one reading the directory
	})
	fromFunc("process_max_fds", "Maximum number of open file descriptors.", "gauge", func() (float64, bool) {
		var l syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, false
		}
		return float64(l.Cur), true
	})
	start := float64(processStart.UnixNano()) / 1e9
	fromFunc("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge", func() (float64, bool) { return start, true })
}

// statm reads field i of /proc/self/statm (0: size, 1: resident), in
// bytes.
func statm(i int) (float64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := bytes.Fields(b)
	if len(f) <= i {
		return 0, false
	}
	pages, err := strconv.ParseUint(string(f[i]), 10, 64)
	if err != nil {
		return 0, false
	}
	return float64(pages) * float64(os.Getpagesize()), true
}
