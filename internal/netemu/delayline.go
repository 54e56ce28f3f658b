package netemu

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// DelayLine holds every packet of one NFQUEUE queue for a fixed time and
// then accepts it, in arrival order: a constant one-way delay without
// sch_netem. It reads metadata only (the kernel keeps the packets) and
// releases with batch verdicts, so one message frees every packet that is
// due.
//
// The whole line is one loop on one OS thread that sleeps in ppoll until
// the next packet arrives or the oldest one is due: no channels and no Go
// scheduler between reading a packet and releasing it, and ppoll's timeout
// is a high-resolution timer. A process busy with other work still competes
// for CPU; DelayLineMain runs the lines in a process of their own.
type DelayLine struct {
	q     *queueSocket
	wake  int // eventfd: Close wakes the loop through it
	delay int64

	packets, verdicts, errs, late atomic.Uint64
	holdSum, holdMax, backlogMax  atomic.Int64
	behind                        atomic.Int64
	realtime, failed              atomic.Bool

	done     chan struct{}
	once     sync.Once
	closeErr error
}

// DelayStats describe what a delay line did.
type DelayStats struct {
	Packets  uint64        `json:"packets"`  // packets held and released (a GSO super-packet counts once)
	Verdicts uint64        `json:"verdicts"` // batch verdicts sent
	MeanHold time.Duration `json:"mean_hold_ns"`
	MaxHold  time.Duration `json:"max_hold_ns"`
	// Late counts packets held more than a millisecond beyond the delay
	// (the line's thread was not scheduled in time).
	Late uint64 `json:"late"`
	// Behind sums how late each late release came (its oldest packet's
	// lateness): the time the line's thread was not running while packets
	// were due. Late understates a stall: a thread descheduled for half a
	// second holds one batch late, and the packets that queued in the
	// kernel meanwhile are read after it and released on time, yet the
	// flow's ACK clock stopped for the whole half second.
	Behind time.Duration `json:"behind_ns"`
	// MaxBacklog is the most packets held at once.
	MaxBacklog int64 `json:"max_backlog"`
	// Errors counts failed reads and verdicts.
	Errors uint64 `json:"errors"`
	// RealTime says the line's thread got SCHED_FIFO (else a high nice).
	RealTime bool `json:"realtime"`
	// Failed is set when the line stopped because its socket kept failing.
	Failed bool `json:"failed,omitempty"`
}

// Sub is what the line did between prev and s, two reports of the same
// line: packets, late packets and time behind in the interval, and the
// mean hold over it (from the cumulative means). The other fields are s's.
func (s DelayStats) Sub(prev DelayStats) DelayStats {
	iv := s
	iv.Packets, iv.Verdicts, iv.Late, iv.Errors = s.Packets-prev.Packets, s.Verdicts-prev.Verdicts, s.Late-prev.Late, s.Errors-prev.Errors
	iv.Behind = s.Behind - prev.Behind
	iv.MeanHold = 0
	if iv.Packets > 0 {
		sum := float64(s.MeanHold)*float64(s.Packets) - float64(prev.MeanHold)*float64(prev.Packets)
		iv.MeanHold = time.Duration(sum / float64(iv.Packets))
	}
	return iv
}

// releaseSlack releases packets this close to due together with the
// earlier ones: sleeping again for a few microseconds costs more than it
// buys.
const releaseSlack = 50 * int64(time.Microsecond)

// maxQueued bounds the packets the kernel holds for one delay line; at
// 500 Mbit/s and 10 ms one direction holds a few hundred.
const maxQueued = 1 << 16

// StartDelayLine binds NFQUEUE number queue in namespace ns and delays
// every packet sent to it by delay until Close.
func StartDelayLine(ns Namespace, queue uint16, delay time.Duration) (*DelayLine, error) {
	var d *DelayLine
	err := ns.Do(func() (err error) {
		d, err = startDelayLine(queue, delay)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delay line %s/%d: %w", ns.Name, queue, err)
	}
	return d, nil
}

// startDelayLine binds queue in the calling thread's namespace.
func startDelayLine(queue uint16, delay time.Duration) (*DelayLine, error) {
	if delay <= 0 {
		return nil, errors.New("delay must be positive")
	}
	q, err := openQueue(queue, maxQueued)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	d := &DelayLine{q: q, wake: wake, delay: int64(delay), done: make(chan struct{})}
	go d.loop()
	return d, nil
}

func monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

type held struct {
	id      uint32
	arrived int64 // CLOCK_MONOTONIC ns
}

func (d *DelayLine) loop() {
	defer close(d.done)
	// Never unlocked: the thread's timer slack and priority die with it
	// instead of leaking to other goroutines.
	runtime.LockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	d.realtime.Store(raisePriority())

	var fifo []held // fifo[head:] are held, oldest first
	head := 0
	buf := make([]byte, 1<<16)
	var ids []uint32
	fds := []unix.PollFd{{Fd: int32(d.q.fd), Events: unix.POLLIN}, {Fd: int32(d.wake), Events: unix.POLLIN}}
	// A real-time thread must never spin: a socket that keeps failing ends
	// the line (its packets are then dropped, which the link's users see).
	failures := 0
	for {
		if failures > 1000 {
			d.failed.Store(true)
			return
		}
		var timeout *unix.Timespec
		if head < len(fifo) {
			wait := max(fifo[head].arrived+d.delay-monotonic(), 0)
			ts := unix.NsecToTimespec(wait)
			timeout = &ts
		}
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Ppoll(fds, timeout, nil); err != nil && err != unix.EINTR {
			d.errs.Add(1)
			failures++
		}
		if fds[1].Revents != 0 {
			return // closing: the kernel drops what is still held
		}
		if fds[0].Revents&unix.POLLNVAL != 0 {
			d.failed.Store(true)
			return
		}
		if fds[0].Revents != 0 {
			for {
				n, err := d.q.recv(buf)
				if err == unix.EAGAIN {
					break
				}
				if err != nil {
					// ENOBUFS and the like: the kernel dropped packets.
					d.errs.Add(1)
					failures++
					break
				}
				failures = 0
				now := monotonic()
				if ids, err = packetIDs(buf[:n], ids[:0]); err != nil {
					d.errs.Add(1)
				}
				for _, id := range ids {
					fifo = append(fifo, held{id: id, arrived: now})
				}
			}
			if b := int64(len(fifo) - head); b > d.backlogMax.Load() {
				d.backlogMax.Store(b)
			}
		}
		now := monotonic()
		released := head
		for released < len(fifo) && fifo[released].arrived+d.delay <= now+releaseSlack {
			d.hold(now - fifo[released].arrived)
			released++
		}
		if released == head {
			continue
		}
		if late := now - (fifo[head].arrived + d.delay); late > int64(time.Millisecond) {
			d.behind.Add(late)
		}
		if err := d.q.acceptUpTo(fifo[released-1].id); err != nil {
			d.errs.Add(1)
		}
		d.packets.Add(uint64(released - head))
		d.verdicts.Add(1)
		head = released
		if head == len(fifo) {
			fifo, head = fifo[:0], 0
		} else if head > 4096 && head > len(fifo)/2 {
			fifo, head = append(fifo[:0], fifo[head:]...), 0
		}
	}
}

// raisePriority makes the calling thread preempt ordinary work: the line is
// the wire, and on a shared, busy machine it must not wait behind the
// traffic it carries (or anyone else's) for a time slice. SCHED_FIFO at a
// low real-time priority is safe here because the thread sleeps unless
// packets are due, and the kernel's real-time throttling caps it anyway;
// without the privilege it falls back to a high nice value. It reports
// whether the thread runs real-time.
func raisePriority() bool {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 10}
	if unix.SchedSetAttr(0, &attr, 0) == nil {
		return true
	}
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), -10)
	return false
}

func (d *DelayLine) hold(ns int64) {
	d.holdSum.Add(ns)
	if ns > d.delay+int64(time.Millisecond) {
		d.late.Add(1)
	}
	if ns > d.holdMax.Load() {
		d.holdMax.Store(ns)
	}
}

// Stats returns the counters so far.
func (d *DelayLine) Stats() DelayStats {
	s := DelayStats{
		Packets:    d.packets.Load(),
		Verdicts:   d.verdicts.Load(),
		MaxHold:    time.Duration(d.holdMax.Load()),
		MaxBacklog: d.backlogMax.Load(),
		Errors:     d.errs.Load(),
		Late:       d.late.Load(),
		Behind:     time.Duration(d.behind.Load()),
		Failed:     d.failed.Load(),
		RealTime:   d.realtime.Load(),
	}
	if s.Packets > 0 {
		s.MeanHold = time.Duration(d.holdSum.Load() / int64(s.Packets))
	}
	return s
}

// Close stops the delay line. Packets still held are dropped by the kernel
// when the queue's socket closes.
func (d *DelayLine) Close() error {
	d.once.Do(func() {
		var one [8]byte
		one[0] = 1 // eventfd counters are host-endian; any non-zero wakes
		_, err := unix.Write(d.wake, one[:])
		if err == nil {
			<-d.done
		}
		d.closeErr = errors.Join(err, d.q.Close(), unix.Close(d.wake))
	})
	return d.closeErr
}
