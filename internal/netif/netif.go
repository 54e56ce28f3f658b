// Package netif owns the pod's view of its network interfaces: which ones
// exist, their MAC and addresses, which one holds the default route (and
// its next hop) and which are wireless. The pods service wants this in
// every sync and status call, the runners use it to bind a test to one
// interface, and the status page to know the container's host.
//
// Everything is read from /proc and /sys (both per network namespace, so a
// container sees its own interfaces), with the roots injectable so tests can
// run against fixture trees. Addresses come from the kernel through the
// standard library (netlink): /proc has no per-interface IPv4 listing.
//
// Wireless details: /proc/net/wireless gives only the link status word, link
// quality, signal and noise levels. The connection_info fields bssid, ssid,
// frequency, channel, channel width and tx bitrate are only available from
// nl80211 (generic netlink, what `iw` uses) and are not read here; callers
// send them as unknown.
package netif

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Interface is one network interface as the pods service and the runners
// need it.
type Interface struct {
	Name string
	// MAC is the hardware address as the kernel prints it
	// ("dc:a6:32:00:00:01"); empty for interfaces without one (tun).
	MAC string
	// IsWLAN marks 802.11 interfaces.
	IsWLAN bool
	// Default marks the interface holding the default route (IPv4 first,
	// else IPv6). At most one interface of a listing has it.
	Default bool
	// Up means administratively up with an operational link (or a link
	// state the driver does not report, like tun devices).
	Up bool
	// Addrs are the interface's addresses. IPv4 addresses and masks are
	// 4 bytes long, so they marshal as the service expects ("////AA==").
	Addrs []*net.IPNet
}

// SourceIP is the address to bind to when a test must leave through this
// interface: the first global unicast IPv4 address, else the first global
// unicast IPv6 address, else nil. Private ranges count as global here (a pod
// behind NAT has only those).
func (i Interface) SourceIP() net.IP {
	for _, a := range i.Addrs {
		if ip4 := a.IP.To4(); ip4 != nil && ip4.IsGlobalUnicast() {
			return ip4
		}
	}
	for _, a := range i.Addrs {
		if a.IP.To4() == nil && a.IP.IsGlobalUnicast() {
			return a.IP
		}
	}
	return nil
}

// ErrNotFound is returned by Lookup for an unknown interface name.
var ErrNotFound = errors.New("no such network interface")

// ErrNoDefaultRoute is returned by DefaultRoute when no interface holds one.
var ErrNoDefaultRoute = errors.New("no default route")

// Lister reads interfaces from a /proc and a /sys tree. The zero value reads
// the running system.
type Lister struct {
	// ProcDir is the procfs root; empty means "/proc".
	ProcDir string
	// SysDir is the sysfs root; empty means "/sys".
	SysDir string
	// Addrs returns an interface's addresses; nil asks the kernel
	// (net.InterfaceByName). Fixture tests supply their own.
	Addrs func(name string) ([]*net.IPNet, error)
}

// Kernel link flags (include/uapi/linux/if.h) and route flags (route.h).
const (
	iffUp       = 0x1
	iffLoopback = 0x8

	rtfUp      = 0x0001
	rtfGateway = 0x0002
	rtfReject  = 0x0200

	arphrdLoopback = 772
)

func (l Lister) proc(p ...string) string {
	root := l.ProcDir
	if root == "" {
		root = "/proc"
	}
	return filepath.Join(append([]string{root}, p...)...)
}

func (l Lister) sys(p ...string) string {
	root := l.SysDir
	if root == "" {
		root = "/sys"
	}
	return filepath.Join(append([]string{root}, p...)...)
}

// List returns every interface except loopback, ordered by kernel index.
func (l Lister) List() ([]Interface, error) {
	entries, err := os.ReadDir(l.sys("class", "net"))
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	wireless := l.wirelessNames()
	def := l.defaultRouteName()
	type indexed struct {
		idx int
		Interface
	}
	var out []indexed
	for _, e := range entries {
		name := e.Name()
		dir := l.sys("class", "net", name)
		// Entries are symlinks into /sys/devices; a plain file such as
		// bonding_masters is not an interface.
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		flags, _ := readHex(filepath.Join(dir, "flags"))
		typ, _ := readInt(filepath.Join(dir, "type"))
		if flags&iffLoopback != 0 || typ == arphrdLoopback {
			continue
		}
		idx, _ := readInt(filepath.Join(dir, "ifindex"))
		oper := readString(filepath.Join(dir, "operstate"))
		it := Interface{
			Name:    name,
			MAC:     readString(filepath.Join(dir, "address")),
			IsWLAN:  wireless[name] || exists(filepath.Join(dir, "wireless")) || exists(filepath.Join(dir, "phy80211")),
			Default: name == def,
			Up:      flags&iffUp != 0 && (oper == "up" || oper == "unknown"),
		}
		addrs, err := l.addrs(name)
		if err != nil {
			return nil, fmt.Errorf("list interfaces: addresses of %s: %w", name, err)
		}
		it.Addrs = addrs
		out = append(out, indexed{idx: int(idx), Interface: it})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].idx != out[j].idx {
			return out[i].idx < out[j].idx
		}
		return out[i].Name < out[j].Name
	})
	res := make([]Interface, len(out))
	for i, o := range out {
		res[i] = o.Interface
	}
	return res, nil
}

// Lookup returns the named interface; ErrNotFound if it does not exist (or
// is loopback).
func (l Lister) Lookup(name string) (Interface, error) {
	all, err := l.List()
	if err != nil {
		return Interface{}, err
	}
	for _, it := range all {
		if it.Name == name {
			return it, nil
		}
	}
	return Interface{}, fmt.Errorf("interface %q: %w", name, ErrNotFound)
}

// DefaultRoute returns the interface holding the default route.
func (l Lister) DefaultRoute() (Interface, error) {
	all, err := l.List()
	if err != nil {
		return Interface{}, err
	}
	for _, it := range all {
		if it.Default {
			return it, nil
		}
	}
	return Interface{}, ErrNoDefaultRoute
}

func (l Lister) addrs(name string) ([]*net.IPNet, error) {
	var raw []*net.IPNet
	if l.Addrs != nil {
		a, err := l.Addrs(name)
		if err != nil {
			return nil, err
		}
		raw = a
	} else {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			// The interface vanished between the directory read and now
			// (a USB dongle unplugged): report it without addresses.
			return nil, nil
		}
		as, err := ifc.Addrs()
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			if n, ok := a.(*net.IPNet); ok {
				raw = append(raw, n)
			}
		}
	}
	var out []*net.IPNet
	for _, n := range raw {
		if n == nil {
			continue
		}
		out = append(out, normalize(n))
	}
	return out, nil
}

// normalize shortens IPv4 addresses and masks to 4 bytes: the service
// expects the mask of an IPv4 network as base64 of 4 bytes.
func normalize(n *net.IPNet) *net.IPNet {
	c := &net.IPNet{IP: append(net.IP(nil), n.IP...), Mask: append(net.IPMask(nil), n.Mask...)}
	if ip4 := c.IP.To4(); ip4 != nil {
		c.IP = ip4
		if len(c.Mask) == net.IPv6len {
			c.Mask = c.Mask[12:]
		}
	}
	return c
}

// defaultRouteName picks the interface of the lowest-metric IPv4 default
// route, else of the lowest-metric IPv6 one. IPv4 wins because it is what
// the pod's tests and the service use when both exist.
func (l Lister) defaultRouteName() string {
	if n := l.defaultRoute4(); n != "" {
		return n
	}
	return l.defaultRoute6()
}

// defaultRoute is one usable default route of the routing table.
type defaultRoute struct {
	iface   string
	gateway netip.Addr // invalid when the route has no next hop
	metric  uint64
}

// best is the lowest-metric route's interface, "" when there is none.
func best(routes []defaultRoute) string {
	name, metric := "", uint64(0)
	for _, r := range routes {
		if name == "" || r.metric < metric {
			name, metric = r.iface, r.metric
		}
	}
	return name
}

func (l Lister) defaultRoute4() string { return best(l.defaultRoutes4()) }
func (l Lister) defaultRoute6() string { return best(l.defaultRoutes6()) }

// /proc/net/route: Iface Destination Gateway Flags RefCnt Use Metric Mask ...
// (hex fields in host byte order; a default route has destination and mask 0).
func (l Lister) defaultRoutes4() []defaultRoute {
	f, err := os.Open(l.proc("net", "route"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var routes []defaultRoute
	s := bufio.NewScanner(f)
	first := true
	for s.Scan() {
		if first { // header
			first = false
			continue
		}
		fs := strings.Fields(s.Text())
		if len(fs) < 8 {
			continue
		}
		flags, err1 := strconv.ParseUint(fs[3], 16, 32)
		metric, err2 := strconv.ParseUint(fs[6], 10, 32)
		gw, err3 := strconv.ParseUint(fs[2], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		if fs[1] != "00000000" || fs[7] != "00000000" || flags&rtfUp == 0 || flags&rtfReject != 0 {
			continue
		}
		r := defaultRoute{iface: fs[0], metric: metric}
		if flags&rtfGateway != 0 && gw != 0 {
			var b [4]byte
			binary.NativeEndian.PutUint32(b[:], uint32(gw))
			r.gateway = netip.AddrFrom4(b)
		}
		routes = append(routes, r)
	}
	return routes
}

// /proc/net/ipv6_route: dest plen src splen nexthop metric refcnt use flags iface
// (all hex). The kernel lists a rejecting ::/0 on lo when there is no route.
func (l Lister) defaultRoutes6() []defaultRoute {
	f, err := os.Open(l.proc("net", "ipv6_route"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var routes []defaultRoute
	s := bufio.NewScanner(f)
	for s.Scan() {
		fs := strings.Fields(s.Text())
		if len(fs) < 10 {
			continue
		}
		if fs[0] != strings.Repeat("0", 32) || fs[1] != "00" || fs[9] == "lo" {
			continue
		}
		metric, err1 := strconv.ParseUint(fs[5], 16, 32)
		flags, err2 := strconv.ParseUint(fs[8], 16, 32)
		if err1 != nil || err2 != nil || flags&rtfUp == 0 || flags&rtfReject != 0 {
			continue
		}
		r := defaultRoute{iface: fs[9], metric: metric}
		if nh, err := hex.DecodeString(fs[4]); err == nil && len(nh) == 16 && flags&rtfGateway != 0 {
			r.gateway = netip.AddrFrom16([16]byte(nh))
		}
		routes = append(routes, r)
	}
	return routes
}

// Gateways returns the next hops of the default routes, IPv4 and IPv6 (an
// IPv6 one is usually link-local, returned without its zone). In a
// container on a Docker bridge network this is the host itself: the bridge
// address from which the engine's proxy opens the connections of a port
// the host publishes, which is how a browser on the pod reaches the agent.
func (l Lister) Gateways() []netip.Addr {
	var gws []netip.Addr
	for _, r := range append(l.defaultRoutes4(), l.defaultRoutes6()...) {
		if r.gateway.IsValid() && !slices.Contains(gws, r.gateway) {
			gws = append(gws, r.gateway)
		}
	}
	return gws
}

func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readHex(path string) (uint64, error) {
	s := strings.TrimPrefix(readString(path), "0x")
	return strconv.ParseUint(s, 16, 64)
}

func readInt(path string) (int64, error) {
	return strconv.ParseInt(readString(path), 10, 64)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

var system Lister

// List returns the running system's interfaces (see Lister.List).
func List() ([]Interface, error) { return system.List() }

// Lookup returns one of the running system's interfaces by name.
func Lookup(name string) (Interface, error) { return system.Lookup(name) }

// Gateways returns the running system's default-route next hops.
func Gateways() []netip.Addr { return system.Gateways() }

// DefaultRoute returns the running system's default-route interface.
func DefaultRoute() (Interface, error) { return system.DefaultRoute() }

// Wireless returns the running system's /proc/net/wireless entry for name.
func Wireless(name string) (WirelessInfo, bool) { return system.Wireless(name) }
