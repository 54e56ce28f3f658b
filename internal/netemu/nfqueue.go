package netemu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The NFQUEUE netlink protocol (linux/netfilter/nfnetlink_queue.h); x/sys
// does not define it. Only what a metadata-only delay line needs.
const (
	nfqnlMsgPacket       = 0
	nfqnlMsgConfig       = 2
	nfqnlMsgVerdictBatch = 3

	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2

	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxlen = 3
	nfqaCfgMask        = 4
	nfqaCfgFlags       = 5

	nfqnlCfgCmdBind = 1
	nfqnlCopyMeta   = 1
	// nfqaCfgFGSO queues GSO packets whole instead of having the kernel
	// segment them first: one message per super-packet, not per segment.
	nfqaCfgFGSO = 1 << 2

	nfAccept = 1

	// nlaTypeMask strips the nested/byte-order flags from an attribute type.
	nlaTypeMask = 0x3fff

	nfnlHdrLen = 4 // struct nfgenmsg
	solNetlink = 270
	// netlinkNoENOBUFS: a full socket buffer drops the packet (counted by
	// the kernel) instead of failing our reads.
	netlinkNoENOBUFS = 5
)

// queueSocket is a netlink socket bound to one NFQUEUE number in the network
// namespace it was created in, receiving packet metadata (never payloads).
// The fd is non-blocking and outside Go's poller: the delay line waits on
// it with ppoll from its own thread.
type queueSocket struct {
	fd    int
	queue uint16
	seq   atomic.Uint32
	vbuf  []byte // verdict message, reused: only the releaser sends
}

// openQueue binds queue num in the calling thread's namespace (call it from
// Namespace.Do). maxLen bounds the packets the kernel holds for us.
func openQueue(num uint16, maxLen uint32) (*queueSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("nfqueue socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("nfqueue bind: %w", err)
	}
	// Bursts at 500 Mbit/s queue thousands of messages between two reads.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	_ = unix.SetsockoptInt(fd, solNetlink, netlinkNoENOBUFS, 1)
	q := &queueSocket{fd: fd, queue: num}
	q.vbuf = q.message(nfqnlMsgVerdictBatch, unix.NLM_F_REQUEST, attr(nfqaVerdictHdr, make([]byte, 8)))

	cmd := []byte{nfqnlCfgCmdBind, 0, 0, 0} // command, pad, pf (unused since 3.8)
	params := make([]byte, 5)
	binary.BigEndian.PutUint32(params[0:4], 0) // copy_range: no payload
	params[4] = nfqnlCopyMeta
	maxlen := binary.BigEndian.AppendUint32(nil, maxLen)
	flags := binary.BigEndian.AppendUint32(nil, nfqaCfgFGSO)
	for _, msg := range [][]byte{
		q.message(nfqnlMsgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, attr(nfqaCfgCmd, cmd)),
		q.message(nfqnlMsgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK,
			attr(nfqaCfgParams, params), attr(nfqaCfgQueueMaxlen, maxlen),
			attr(nfqaCfgMask, flags), attr(nfqaCfgFlags, flags)),
	} {
		if err := q.request(msg); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("nfqueue %d config: %w", num, err)
		}
	}
	return q, nil
}

// message builds an nfnetlink message addressed to the queue.
func (q *queueSocket) message(typ uint8, flags uint16, attrs ...[]byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+nfnlHdrLen)
	binary.NativeEndian.PutUint16(b[4:6], uint16(unix.NFNL_SUBSYS_QUEUE)<<8|uint16(typ))
	binary.NativeEndian.PutUint16(b[6:8], flags)
	binary.NativeEndian.PutUint32(b[8:12], q.seq.Add(1))
	b[16] = unix.AF_UNSPEC
	b[17] = unix.NFNETLINK_V0
	binary.BigEndian.PutUint16(b[18:20], q.queue)
	for _, a := range attrs {
		b = append(b, a...)
	}
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	return b
}

func attr(typ uint16, payload []byte) []byte {
	n := unix.SizeofNlAttr + len(payload)
	b := make([]byte, (n+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1))
	binary.NativeEndian.PutUint16(b[0:2], uint16(n))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	copy(b[4:], payload)
	return b
}

// request sends a config message and waits for its acknowledgement. No
// packet can arrive before the queue is bound, so the reply is the ack.
func (q *queueSocket) request(msg []byte) error {
	if err := q.send(msg); err != nil {
		return err
	}
	seq := binary.NativeEndian.Uint32(msg[8:12])
	buf := make([]byte, 4096)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := q.recv(buf)
		if err == unix.EAGAIN {
			if time.Now().After(deadline) {
				return errors.New("no acknowledgement from the kernel")
			}
			if err := waitReadable(q.fd, 100*time.Millisecond); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		for b := buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b[0:4]))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return errors.New("malformed netlink reply")
			}
			typ := binary.NativeEndian.Uint16(b[4:6])
			if typ == unix.NLMSG_ERROR && binary.NativeEndian.Uint32(b[8:12]) == seq && l >= unix.NLMSG_HDRLEN+4 {
				if errno := int32(binary.NativeEndian.Uint32(b[16:20])); errno != 0 {
					return unix.Errno(-errno)
				}
				return nil
			}
			b = b[nlmsgAlign(l):]
		}
	}
}

func nlmsgAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// send writes a message; the kernel consumes netlink requests synchronously.
func (q *queueSocket) send(msg []byte) error {
	for {
		err := unix.Sendto(q.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err != unix.EINTR {
			return err
		}
	}
}

// recv reads one message without waiting: unix.EAGAIN when there is none.
func (q *queueSocket) recv(buf []byte) (int, error) {
	for {
		n, _, err := unix.Recvfrom(q.fd, buf, unix.MSG_DONTWAIT)
		if err != unix.EINTR {
			return n, err
		}
	}
}

func waitReadable(fd int, timeout time.Duration) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	ts := unix.NsecToTimespec(int64(timeout))
	_, err := unix.Ppoll(fds, &ts, nil)
	if err == unix.EINTR {
		return nil
	}
	return err
}

// packetIDs appends the ids of the packets in a batch read by recv.
func packetIDs(b []byte, ids []uint32) ([]uint32, error) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return ids, errors.New("malformed nfqueue message")
		}
		typ := binary.NativeEndian.Uint16(b[4:6])
		if typ == uint16(unix.NFNL_SUBSYS_QUEUE)<<8|nfqnlMsgPacket && l >= unix.NLMSG_HDRLEN+nfnlHdrLen {
			if id, ok := packetID(b[unix.NLMSG_HDRLEN+nfnlHdrLen : l]); ok {
				ids = append(ids, id)
			}
		}
		b = b[min(nlmsgAlign(l), len(b)):]
	}
	return ids, nil
}

func packetID(attrs []byte) (uint32, bool) {
	for len(attrs) >= unix.SizeofNlAttr {
		l := int(binary.NativeEndian.Uint16(attrs[0:2]))
		typ := binary.NativeEndian.Uint16(attrs[2:4]) & nlaTypeMask
		if l < unix.SizeofNlAttr || l > len(attrs) {
			return 0, false
		}
		if typ == nfqaPacketHdr && l >= unix.SizeofNlAttr+4 {
			return binary.BigEndian.Uint32(attrs[4:8]), true
		}
		attrs = attrs[min((l+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1), len(attrs)):]
	}
	return 0, false
}

// acceptUpTo accepts every queued packet whose id is ≤ id: one message
// releases a whole batch, which FIFO release makes exact.
func (q *queueSocket) acceptUpTo(id uint32) error {
	b := q.vbuf
	binary.NativeEndian.PutUint32(b[8:12], q.seq.Add(1))
	hdr := b[unix.NLMSG_HDRLEN+nfnlHdrLen+unix.SizeofNlAttr:]
	binary.BigEndian.PutUint32(hdr[0:4], nfAccept)
	binary.BigEndian.PutUint32(hdr[4:8], id)
	return q.send(b)
}

func (q *queueSocket) Close() error { return unix.Close(q.fd) }
