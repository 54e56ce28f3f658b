package netemu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/radarpod/radarpod/internal/backoff"
)

// Ping sends n ICMP echo requests from ns to dst, interval apart, and
// returns the round-trip times of the replies (the far kernel answers, no
// program on the far side adds its scheduling delay). Lost replies are
// missing from the result; it fails only if none came back.
func Ping(ctx context.Context, ns Namespace, dst netip.Addr, n int, interval time.Duration) ([]time.Duration, error) {
	var conn net.PacketConn
	if err := ns.Do(func() (err error) {
		conn, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return nil, fmt.Errorf("ping: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	ident := uint16(os.Getpid())
	to := &net.IPAddr{IP: dst.AsSlice()}
	var rtts []time.Duration
	buf := make([]byte, 1500)
	for seq := range n {
		if seq > 0 {
			select {
			case <-time.After(interval):
			case <-ctx.Done():
				return rtts, ctx.Err()
			}
		}
		sent := time.Now()
		if _, err := conn.WriteTo(echoRequest(ident, uint16(seq)), to); err != nil {
			return rtts, fmt.Errorf("ping %s: %w", dst, err)
		}
		conn.SetReadDeadline(sent.Add(2 * time.Second))
		for {
			m, _, err := conn.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil {
					return rtts, ctx.Err()
				}
				break // lost: move on
			}
			// Type 0 (echo reply), our id and sequence; the IPv4 header is
			// already stripped for ip4:icmp sockets.
			if m >= 8 && buf[0] == 0 && binary.BigEndian.Uint16(buf[4:6]) == ident && binary.BigEndian.Uint16(buf[6:8]) == uint16(seq) {
				rtts = append(rtts, time.Since(sent))
				break
			}
		}
	}
	if len(rtts) == 0 {
		return nil, fmt.Errorf("ping %s: no replies to %d requests", dst, n)
	}
	return rtts, nil
}

func echoRequest(id, seq uint16) []byte {
	b := make([]byte, 8+56)
	b[0] = 8 // echo request
	binary.BigEndian.PutUint16(b[4:6], id)
	binary.BigEndian.PutUint16(b[6:8], seq)
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(b[2:4], ^uint16(sum))
	return b
}

// Goodput runs one bulk TCP flow from sender to receiver, which listens on
// receiverAddr, and returns the receiver's goodput in Mbit/s over d after a
// warmup (slow start, the first queue): the ceiling any single-flow test
// can reach on the link. It samples the kernel's counters (TCP_INFO) with
// the clock, so a reader that the scheduler delays does not skew the window.
//
// The count is of data segments as they arrive, not of bytes delivered in
// order: after a loss the in-order count stands still for a round trip and
// then jumps by everything queued out of order behind the hole, so a loss
// just before the window opens moves up to a window of bytes into it (CI saw
// 98.8 % of a 30 Mbit/s rate over 3 s through a shaper whose ceiling is
// 95.6 %). Arrivals are what crossed the link in the window. A bulk flow
// sends full-sized segments, so segments times the receiver's MSS is the
// payload; a retransmission of a dropped segment is its first arrival.
func Goodput(ctx context.Context, sender, receiver Namespace, receiverAddr netip.Addr, warmup, d time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, warmup+d+30*time.Second)
	defer cancel()
	ln, err := receiver.Listen("tcp", netip.AddrPortFrom(receiverAddr, 0).String())
	if err != nil {
		return 0, fmt.Errorf("goodput: %w", err)
	}
	defer ln.Close()
	stopLn := context.AfterFunc(ctx, func() { ln.Close() })
	defer stopLn()

	accepted := make(chan net.Conn, 1)
	acceptErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acceptErr <- err
			return
		}
		accepted <- c
	}()
	out, err := sender.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return 0, fmt.Errorf("goodput: %w", err)
	}
	defer out.Close()
	var in net.Conn
	select {
	case in = <-accepted:
	case err := <-acceptErr:
		return 0, fmt.Errorf("goodput: accept: %w", err)
	}
	defer in.Close()
	stopConns := context.AfterFunc(ctx, func() { in.Close(); out.Close() })
	defer stopConns()

	go func() {
		buf := make([]byte, 256<<10)
		for {
			if _, err := out.Write(buf); err != nil {
				return
			}
		}
	}()
	go io.Copy(io.Discard, in)

	// sample reads the kernel's count with the time it was read at. A thread
	// preempted between the clock and the count would skew the window (by
	// 0.9% for a 36 ms preemption over 4 s, seen on a loaded machine), so
	// the read is bracketed by two clock reads and retried until they are
	// close.
	rc, err := in.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("goodput: %w", err)
	}
	sample := func() (time.Time, *unix.TCPInfo, error) {
		var at time.Time
		var last *unix.TCPInfo
		var ierr error
		for range 20 {
			var before, after time.Time
			var info *unix.TCPInfo
			if err := rc.Control(func(fd uintptr) {
				before = time.Now()
				info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
				after = time.Now()
			}); err != nil {
				return at, nil, err
			}
			if ierr != nil {
				return at, nil, ierr
			}
			at, last = before.Add(after.Sub(before)/2), info
			if after.Sub(before) < 500*time.Microsecond {
				break
			}
		}
		return at, last, nil
	}
	if err := backoff.Wait(ctx, warmup); err != nil {
		return 0, err
	}
	t0, i0, err := sample()
	if err != nil {
		return 0, fmt.Errorf("goodput: %w", err)
	}
	if err := backoff.Wait(ctx, d); err != nil {
		return 0, err
	}
	t1, i1, err := sample()
	if err != nil {
		return 0, fmt.Errorf("goodput: %w", err)
	}
	// uint32 arithmetic keeps the count right across a wrap; the MSS is
	// the later one, settled long after the warmup.
	segs := i1.Data_segs_in - i0.Data_segs_in
	if segs == 0 || i1.Rcv_mss == 0 {
		return 0, errors.New("goodput: nothing received")
	}
	return float64(segs) * float64(i1.Rcv_mss) * 8 / t1.Sub(t0).Seconds() / 1e6, nil
}

// Ping measures the link's round trip from the client to the server.
func (l *Link) Ping(ctx context.Context, n int, interval time.Duration) ([]time.Duration, error) {
	return Ping(ctx, l.Client, l.ServerAddr, n, interval)
}

// Goodput measures one bulk TCP flow over the link: downstream (server to
// client) or upstream.
func (l *Link) Goodput(ctx context.Context, downstream bool, warmup, d time.Duration) (float64, error) {
	if downstream {
		return Goodput(ctx, l.Server, l.Client, l.ClientAddr, warmup, d)
	}
	return Goodput(ctx, l.Client, l.Server, l.ServerAddr, warmup, d)
}
