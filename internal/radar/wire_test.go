package radar_test

import (
	"encoding/json"
	"net"
	"testing"

	"github.com/radarpod/radarpod/internal/netif"
	"github.com/radarpod/radarpod/internal/radar"
)

func TestFromNetifWireForm(t *testing.T) {
	v4 := &net.IPNet{IP: net.ParseIP("192.168.1.10"), Mask: net.CIDRMask(24+96, 128)} // 16-byte forms
	_, v6, _ := net.ParseCIDR("2001:db8::/64")
	v6.IP = net.ParseIP("2001:db8::10")
	got := radar.FromNetif([]netif.Interface{
		{Name: "eth0", MAC: "dc:a6:32:00:00:01", Default: true, Up: true, Addrs: []*net.IPNet{v4, v6}},
		{Name: "wlan0", MAC: "dc:a6:32:00:00:02", IsWLAN: true},
	})
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"name":"eth0","mac":"dc:a6:32:00:00:01","is_wlan":false,"default":true,"ips":[{"IP":"192.168.1.10","Mask":"////AA=="},{"IP":"2001:db8::10","Mask":"//////////8AAAAAAAAAAA=="}]},` +
		`{"name":"wlan0","mac":"dc:a6:32:00:00:02","is_wlan":true,"default":false,"ips":null}]`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	if b, _ := json.Marshal(radar.FromNetif(nil)); string(b) != "[]" {
		t.Fatalf("no interfaces marshal as %s, want []", b)
	}
}

func TestBoolString(t *testing.T) {
	for _, tc := range []struct {
		v    radar.BoolString
		wire string
	}{{true, `"true"`}, {false, `"false"`}} {
		b, _ := json.Marshal(tc.v)
		if string(b) != tc.wire {
			t.Errorf("%v marshals as %s", tc.v, b)
		}
		var back radar.BoolString
		if err := json.Unmarshal(b, &back); err != nil || back != tc.v {
			t.Errorf("%s unmarshals as %v, %v", b, back, err)
		}
	}
	var b radar.BoolString
	if err := json.Unmarshal([]byte("true"), &b); err == nil {
		t.Error("a JSON boolean was accepted")
	}
}

func TestStatusRequestWireForm(t *testing.T) {
	b, err := json.Marshal(radar.StatusRequest{Version: "1.4.0", ServiceFirstPing: true, NetworkInterfaces: radar.FromNetif(nil)})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"version":"1.4.0","distribution":"","watchdog_version":"","os_version":"","hardware_platform":"","service_first_ping":"true","network_interfaces":[]}`
	if string(b) != want {
		t.Fatalf("got %s", b)
	}
}
