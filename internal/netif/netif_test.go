package netif

import (
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func cidr(t *testing.T, s string) *net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel hands out IPv4 addresses in 16-byte form with 4-byte
	// masks, or both in 16-byte form; feed the awkward form so the
	// normalisation is exercised.
	n.IP = ip
	if ip.To4() != nil {
		n.IP = ip.To16()
		n.Mask = append(net.IPMask(net.IP{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}), n.Mask...)
	}
	return n
}

func fixture(t *testing.T, name string, addrs map[string][]string) Lister {
	root := filepath.Join("testdata", name)
	return Lister{
		ProcDir: filepath.Join(root, "proc"),
		SysDir:  filepath.Join(root, "sys"),
		Addrs: func(ifname string) ([]*net.IPNet, error) {
			var out []*net.IPNet
			for _, s := range addrs[ifname] {
				out = append(out, cidr(t, s))
			}
			return out, nil
		},
	}
}

type want struct {
	name, mac              string
	wlan, def, up          bool
	addrs                  []string
	source                 string
	wireless               bool
	signal, quality, noise int
	hasNoise               bool
}

func TestListFixtures(t *testing.T) {
	tests := []struct {
		name     string
		addrs    map[string][]string
		want     []want
		wantDef  string
		lookupNo string
	}{
		{
			name: "pi",
			addrs: map[string][]string{
				"eth0":    {"192.168.0.10/24", "fe80::dea6:32ff:fe00:1/64", "2001:db8::10/64"},
				"wlan0":   {"192.168.1.20/24"},
				"docker0": {"172.17.0.1/16"},
			},
			want: []want{
				{name: "eth0", mac: "dc:a6:32:00:00:01", def: true, up: true,
					addrs:  []string{"192.168.0.10/24", "fe80::dea6:32ff:fe00:1/64", "2001:db8::10/64"},
					source: "192.168.0.10"},
				{name: "wlan0", mac: "dc:a6:32:00:00:02", wlan: true, up: true,
					addrs: []string{"192.168.1.20/24"}, source: "192.168.1.20",
					wireless: true, quality: 70, signal: -40},
				{name: "docker0", mac: "02:42:03:53:d4:64", addrs: []string{"172.17.0.1/16"}, source: "172.17.0.1"},
			},
			wantDef:  "eth0",
			lookupNo: "lo",
		},
		{
			name:  "wlan-default",
			addrs: map[string][]string{"wlan0": {"10.10.0.5/24"}},
			want: []want{
				{name: "eth0", mac: "b8:27:eb:00:00:01"},
				{name: "wlan0", mac: "b8:27:eb:00:00:02", wlan: true, def: true, up: true,
					addrs: []string{"10.10.0.5/24"}, source: "10.10.0.5",
					wireless: true, quality: 54, signal: -56, noise: -95, hasNoise: true},
			},
			wantDef: "wlan0",
		},
		{
			name: "v6only",
			addrs: map[string][]string{
				"eth0": {"192.168.0.2/24", "fe80::1/64"},
				"eth1": {"fe80::2/64", "fd00::2/64"},
			},
			want: []want{
				{name: "eth0", mac: "02:00:00:00:00:01", up: true, addrs: []string{"192.168.0.2/24", "fe80::1/64"}, source: "192.168.0.2"},
				{name: "eth1", mac: "02:00:00:00:00:02", up: true, def: true, addrs: []string{"fe80::2/64", "fd00::2/64"}, source: "fd00::2"},
				{name: "tun0", up: true},
			},
			wantDef: "eth1",
		},
		{
			name:  "nodefault",
			addrs: map[string][]string{},
			want: []want{
				{name: "eth0", mac: "02:00:00:00:00:01"},
				{name: "wlx00c0ca000001", mac: "00:c0:ca:00:00:01", wlan: true, wireless: true},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := fixture(t, tc.name, tc.addrs)
			got, err := l.List()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d interfaces %+v, want %d", len(got), got, len(tc.want))
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Name != w.name || g.MAC != w.mac || g.IsWLAN != w.wlan || g.Default != w.def || g.Up != w.up {
					t.Errorf("interface %d = {%s %q wlan=%v def=%v up=%v}, want {%s %q wlan=%v def=%v up=%v}",
						i, g.Name, g.MAC, g.IsWLAN, g.Default, g.Up, w.name, w.mac, w.wlan, w.def, w.up)
				}
				var addrs []string
				for _, a := range g.Addrs {
					addrs = append(addrs, a.String())
					if a.IP.To4() != nil && (len(a.IP) != 4 || len(a.Mask) != 4) {
						t.Errorf("%s: IPv4 %s not normalised to 4 bytes (ip %d, mask %d)", g.Name, a, len(a.IP), len(a.Mask))
					}
				}
				if strings.Join(addrs, ",") != strings.Join(w.addrs, ",") {
					t.Errorf("%s addrs = %v, want %v", g.Name, addrs, w.addrs)
				}
				src := ""
				if ip := g.SourceIP(); ip != nil {
					src = ip.String()
				}
				if src != w.source {
					t.Errorf("%s SourceIP = %q, want %q", g.Name, src, w.source)
				}
				wi, ok := l.Wireless(g.Name)
				if ok != w.wireless {
					t.Errorf("%s Wireless ok = %v, want %v", g.Name, ok, w.wireless)
				}
				if ok && (wi.SignalDBm != w.signal || wi.LinkQuality != w.quality || wi.NoiseDBm != w.noise || wi.HasNoise != w.hasNoise || wi.Status != "0000") {
					t.Errorf("%s wireless = %+v, want signal %d quality %d noise %d/%v", g.Name, wi, w.signal, w.quality, w.noise, w.hasNoise)
				}
			}

			def, err := l.DefaultRoute()
			if tc.wantDef == "" {
				if !errors.Is(err, ErrNoDefaultRoute) {
					t.Errorf("DefaultRoute = %v, %v; want ErrNoDefaultRoute", def.Name, err)
				}
			} else if err != nil || def.Name != tc.wantDef {
				t.Errorf("DefaultRoute = %q, %v; want %q", def.Name, err, tc.wantDef)
			}

			for _, w := range tc.want {
				it, err := l.Lookup(w.name)
				if err != nil || it.Name != w.name {
					t.Errorf("Lookup(%q) = %q, %v", w.name, it.Name, err)
				}
			}
			for _, missing := range []string{"nope0", tc.lookupNo} {
				if missing == "" {
					continue
				}
				if _, err := l.Lookup(missing); !errors.Is(err, ErrNotFound) {
					t.Errorf("Lookup(%q) error = %v, want ErrNotFound", missing, err)
				}
			}
		})
	}
}

// The service decodes masks as Go's net.IPNet marshals them: an IPv4 /24
// must be "////AA==", never the 16-byte form.
func TestIPv4MaskMarshalsAsFourBytes(t *testing.T) {
	l := fixture(t, "pi", map[string][]string{"eth0": {"192.168.1.10/24"}})
	it, err := l.Lookup("eth0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(it.Addrs)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `[{"IP":"192.168.1.10","Mask":"////AA=="}]` {
		t.Fatalf("marshalled %s", b)
	}
}

func TestMissingSysDirIsAnError(t *testing.T) {
	l := Lister{ProcDir: t.TempDir(), SysDir: t.TempDir()}
	if _, err := l.List(); err == nil {
		t.Fatal("List on an empty sysfs succeeded")
	}
	if _, ok := l.Wireless("wlan0"); ok {
		t.Fatal("Wireless without /proc/net/wireless reported an entry")
	}
}

// TestRealMachine reads this machine's interfaces through the real /proc,
// /sys and netlink, and cross-checks them with the standard library.
func TestRealMachine(t *testing.T) {
	all, err := List()
	if err != nil {
		t.Fatal(err)
	}
	std, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]net.Interface{}
	for _, s := range std {
		byName[s.Name] = s
	}
	defaults := 0
	for _, it := range all {
		s, ok := byName[it.Name]
		if !ok {
			t.Errorf("%s listed but unknown to net.Interfaces", it.Name)
			continue
		}
		if s.Flags&net.FlagLoopback != 0 {
			t.Errorf("loopback %s listed", it.Name)
		}
		if it.MAC != s.HardwareAddr.String() {
			t.Errorf("%s MAC = %q, net says %q", it.Name, it.MAC, s.HardwareAddr)
		}
		if it.Up && s.Flags&net.FlagUp == 0 {
			t.Errorf("%s Up but not administratively up", it.Name)
		}
		for _, a := range it.Addrs {
			if a.IP.To4() != nil && len(a.Mask) != 4 {
				t.Errorf("%s: IPv4 mask of %s is %d bytes", it.Name, a, len(a.Mask))
			}
		}
		if it.Default {
			defaults++
		}
	}
	for _, s := range std {
		if s.Flags&net.FlagLoopback != 0 {
			continue
		}
		if _, err := Lookup(s.Name); err != nil {
			t.Errorf("Lookup(%s): %v", s.Name, err)
		}
	}
	if defaults > 1 {
		t.Errorf("%d interfaces marked default", defaults)
	}
	// Machines with a default route must name it; the kernel's own view
	// decides whether one exists.
	if def, err := DefaultRoute(); err == nil {
		if !def.Default {
			t.Errorf("DefaultRoute returned %s without the Default flag", def.Name)
		}
		t.Logf("default route via %s (source %v), %d interfaces", def.Name, def.SourceIP(), len(all))
	} else if !errors.Is(err, ErrNoDefaultRoute) {
		t.Fatal(err)
	} else if defaults != 0 {
		t.Errorf("no default route, yet %d interfaces marked default", defaults)
	}
}

// TestGatewaysFixtures: the default routes' next hops, IPv4 (host byte
// order in /proc) and IPv6 (link-local, zone dropped); routes without a
// next hop and the rejecting ::/0 on lo give none.
func TestGatewaysFixtures(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		want    []string
	}{
		{"pi", []string{"192.168.1.1", "192.168.0.1"}},
		{"wlan-default", []string{"10.10.0.1"}},
		{"v6only", []string{"fe80::1", "fe80::2"}},
		{"nodefault", nil},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			var got []string
			for _, a := range fixture(t, tc.fixture, nil).Gateways() {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Gateways() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestGatewaysRealMachine: this machine's IPv4 default next hops are the
// ones iproute2 reports.
func TestGatewaysRealMachine(t *testing.T) {
	out, err := exec.Command("ip", "-4", "route", "show", "default").Output()
	if err != nil {
		t.Fatalf("ip route (iproute2, which .ci/run installs): %v", err)
	}
	var want []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fs := strings.Fields(line)
		for i := 0; i+1 < len(fs); i++ {
			if fs[i] == "via" && !slices.Contains(want, fs[i+1]) {
				want = append(want, fs[i+1])
			}
		}
	}
	var got []string
	for _, a := range Gateways() {
		if a.Is4() {
			got = append(got, a.String())
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Gateways() IPv4 = %v, ip route says %v", got, want)
	}
}
