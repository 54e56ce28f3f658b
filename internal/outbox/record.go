package outbox

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/radarpod/radarpod/internal/wallclock"
)

// On-disk record layout (format version 2), little endian:
//
//	0  magic "RPOB"
//	4  format version (2)
//	5  flags (bit 0: wireless; bit 1: clock synced)
//	6  CRC-32C over bytes [0:6] and [10:]
//	10 body: ID, CreatedAt (int64 seconds + uint32 nanoseconds),
//	   ClockSource, BootID, Boot (uint64 nanoseconds), Runner, Style,
//	   Interface, ErrorClass, ConnectionInfo, Result — strings and byte
//	   slices as uvarint length + bytes, Result last.
//
// Version 1 (written by agents before the clock was tracked) is the same
// without bit 1 and the three clock fields; it is still read, as a record
// whose clock is unknown (an empty wallclock.Stamp). Only version 2 is
// written: an agent rolled back to a version-1 build quarantines (and
// counts) what this one stored.
//
// The header is a few dozen bytes plus the strings, so a record costs little
// more than its payload on disk. The checksum covers everything, so a torn
// or bit-rotten file is detected rather than uploaded.
const (
	magic         = "RPOB"
	formatVersion = 2
	headerLen     = 10
	flagWireless  = 1 << 0
	flagSynced    = 1 << 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errFormat marks a record file whose content cannot be trusted.
var errFormat = errors.New("malformed record")

func encodedLen(r *Record) int64 {
	n := int64(headerLen) + 12 + 8
	for _, s := range []string{r.ID, string(r.Clock.Source), r.Clock.BootID, r.Runner, r.Style, r.Interface, r.ErrorClass} {
		n += uvarintLen(uint64(len(s))) + int64(len(s))
	}
	for _, b := range [][]byte{r.ConnectionInfo, r.Result} {
		n += uvarintLen(uint64(len(b))) + int64(len(b))
	}
	return n
}

func uvarintLen(v uint64) int64 {
	n := int64(1)
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func encode(r *Record) []byte {
	b := make([]byte, headerLen, encodedLen(r))
	copy(b, magic)
	b[4] = formatVersion
	if r.Wireless {
		b[5] |= flagWireless
	}
	if r.Clock.Synced {
		b[5] |= flagSynced
	}
	b = appendString(b, r.ID)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.CreatedAt.Unix()))
	b = binary.LittleEndian.AppendUint32(b, uint32(r.CreatedAt.Nanosecond()))
	b = appendString(b, string(r.Clock.Source))
	b = appendString(b, r.Clock.BootID)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Clock.Boot))
	b = appendString(b, r.Runner)
	b = appendString(b, r.Style)
	b = appendString(b, r.Interface)
	b = appendString(b, r.ErrorClass)
	b = appendBytes(b, r.ConnectionInfo)
	b = appendBytes(b, r.Result)
	binary.LittleEndian.PutUint32(b[6:10], checksum(b))
	return b
}

func checksum(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[:6])
	return crc32.Update(c, castagnoli, b[headerLen:])
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// decode parses and verifies one record file. Every failure wraps errFormat.
// The returned Record's slices alias b.
func decode(b []byte) (Record, error) {
	var r Record
	if len(b) < headerLen {
		return r, fmt.Errorf("%w: %d bytes, shorter than the header", errFormat, len(b))
	}
	if string(b[:4]) != magic {
		return r, fmt.Errorf("%w: bad magic %q", errFormat, b[:4])
	}
	version := b[4]
	if version != 1 && version != formatVersion {
		return r, fmt.Errorf("%w: unknown format version %d", errFormat, version)
	}
	if want, got := binary.LittleEndian.Uint32(b[6:10]), checksum(b); want != got {
		return r, fmt.Errorf("%w: checksum %08x, header says %08x", errFormat, got, want)
	}
	known := byte(flagWireless)
	if version >= 2 {
		known |= flagSynced
	}
	if b[5]&^known != 0 {
		return r, fmt.Errorf("%w: unknown flags %#x", errFormat, b[5])
	}
	r.Wireless = b[5]&flagWireless != 0
	d := decoder{b: b[headerLen:]}
	r.ID = string(d.bytes())
	secs, nanos := d.uint64(), d.uint32()
	if version >= 2 {
		r.Clock.Synced = b[5]&flagSynced != 0
		r.Clock.Source = source(d.bytes())
		r.Clock.BootID = string(d.bytes())
		boot := d.uint64()
		if boot > 1<<63-1 {
			d.fail("boot time")
		}
		r.Clock.Boot = time.Duration(boot)
	}
	r.Runner = string(d.bytes())
	r.Style = string(d.bytes())
	r.Interface = string(d.bytes())
	r.ErrorClass = string(d.bytes())
	if ci := d.bytes(); len(ci) > 0 {
		r.ConnectionInfo = json.RawMessage(ci)
	}
	r.Result = d.bytes()
	if d.err != nil {
		return Record{}, d.err
	}
	if len(d.b) != 0 {
		return Record{}, fmt.Errorf("%w: %d trailing bytes", errFormat, len(d.b))
	}
	if nanos >= 1e9 {
		return Record{}, fmt.Errorf("%w: bad timestamp", errFormat)
	}
	r.CreatedAt = time.Unix(int64(secs), int64(nanos)).UTC()
	return r, nil
}

// source returns the known sources as their constants, so that a store of
// thousands of records does not hold a copy of "kernel" for each.
func source(b []byte) wallclock.Source {
	for _, s := range []wallclock.Source{wallclock.SourceKernel, wallclock.SourceServiceDate, wallclock.SourceBootClock, wallclock.SourceUnsynced} {
		if string(b) == string(s) {
			return s
		}
	}
	return wallclock.Source(b)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", errFormat, what)
	}
	d.b = nil
}

func (d *decoder) bytes() []byte {
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.fail("field")
		return nil
	}
	v := d.b[k : k+int(n) : k+int(n)]
	d.b = d.b[k+int(n):]
	return v
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail("timestamp")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uint32() uint32 {
	if len(d.b) < 4 {
		d.fail("timestamp")
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}
