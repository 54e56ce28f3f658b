package netif

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// WirelessInfo is what /proc/net/wireless says about one 802.11 interface.
// BSSID, SSID, frequency, channel, width and bitrate need nl80211 and are
// not part of it (see the package comment).
type WirelessInfo struct {
	// Status is the driver's status word, as the kernel prints it ("0000").
	Status string
	// LinkQuality is the driver's link quality (often out of 70).
	LinkQuality int
	// SignalDBm is the signal level in dBm.
	SignalDBm int
	// NoiseDBm is the noise level in dBm, valid only when HasNoise: most
	// cfg80211 drivers report none (printed as -256).
	NoiseDBm int
	HasNoise bool
}

// Wireless returns the /proc/net/wireless entry for name; false when the
// interface is not listed there (not wireless, or not associated on some
// drivers).
func (l Lister) Wireless(name string) (WirelessInfo, bool) {
	all := l.readWireless()
	w, ok := all[name]
	return w, ok
}

func (l Lister) wirelessNames() map[string]bool {
	out := map[string]bool{}
	for n := range l.readWireless() {
		out[n] = true
	}
	return out
}

// readWireless parses /proc/net/wireless:
//
//	Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE
//	 face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22
//	 wlan0: 0000   70.  -40.  -256        0      0      0      0      0        0
//
// A '.' after a quality value marks it as updated since the last read; the
// kernel has already converted dBm levels to signed numbers.
func (l Lister) readWireless() map[string]WirelessInfo {
	out := map[string]WirelessInfo{}
	f, err := os.Open(l.proc("net", "wireless"))
	if err != nil {
		return out
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := strings.TrimSpace(line[:colon])
		if name == "" || strings.ContainsAny(name, "|") {
			continue
		}
		fs := strings.Fields(line[colon+1:])
		if len(fs) < 4 {
			continue
		}
		w := WirelessInfo{Status: fs[0]}
		var ok1, ok2, ok3 bool
		w.LinkQuality, ok1 = wirelessValue(fs[1])
		w.SignalDBm, ok2 = wirelessValue(fs[2])
		w.NoiseDBm, ok3 = wirelessValue(fs[3])
		if !ok1 || !ok2 || !ok3 {
			continue
		}
		// -256 is "0 with the dBm flag": the driver has no noise figure.
		w.HasNoise = w.NoiseDBm > -256 && w.NoiseDBm != 0
		if !w.HasNoise {
			w.NoiseDBm = 0
		}
		out[name] = w
	}
	return out
}

func wirelessValue(s string) (int, bool) {
	s = strings.TrimRight(s, ".")
	v, err := strconv.Atoi(s)
	return v, err == nil
}
