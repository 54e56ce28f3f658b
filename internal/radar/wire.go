// Package radar owns the pods service protocol as a pod speaks it:
// registration, the ActionCable live channel, the fallback status
// heartbeat and the measurement upload, with every wire type in one place.
// The contract is docs/radar-protocol.md; names on the wire are literal.
package radar

import (
	"encoding/json"
	"net"

	"github.com/radarpod/radarpod/internal/netif"
)

// RegisterRequest is the body of POST /api/v1/clients. Empty fields are
// sent as JSON null, as the pods in the field do.
type RegisterRequest struct {
	RegistrationToken string
	Name              string
	RegisterLabel     string
}

// MarshalJSON writes all three keys, null when empty.
func (r RegisterRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		RegistrationToken *string `json:"registration_token"`
		Name              *string `json:"name"`
		RegisterLabel     *string `json:"register_label"`
	}{nullable(r.RegistrationToken), nullable(r.Name), nullable(r.RegisterLabel)})
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ClientRecord is the service's client (pod) record as registration and
// status return it. The agent needs only the identity fields; the rest is
// informational.
type ClientRecord struct {
	ID            int64   `json:"id"`
	UnixUser      string  `json:"unix_user"`
	Secret        string  `json:"secret,omitempty"`
	AccountID     *int64  `json:"account_id"`
	LocationID    *int64  `json:"location_id"`
	Name          *string `json:"name"`
	Address       *string `json:"address"`
	RegisterLabel *string `json:"register_label"`
	PingedAt      *string `json:"pinged_at"`
	Online        bool    `json:"online"`
	TestRequested bool    `json:"test_requested"`
	CreatedAt     string  `json:"created_at,omitempty"`
}

// NetInterface is one entry of net_interfaces / network_interfaces.
type NetInterface struct {
	Name    string `json:"name"`
	MAC     string `json:"mac"`
	IsWLAN  bool   `json:"is_wlan"`
	Default bool   `json:"default"`
	// IPs marshal as Go's net.IPNet does ({"IP":"...","Mask":"<base64>"});
	// nil (JSON null) when the interface has no address.
	IPs []net.IPNet `json:"ips"`
}

// FromNetif converts the pod's interfaces to their wire form.
func FromNetif(ifs []netif.Interface) []NetInterface {
	out := make([]NetInterface, 0, len(ifs))
	for _, it := range ifs {
		ni := NetInterface{Name: it.Name, MAC: it.MAC, IsWLAN: it.IsWLAN, Default: it.Default}
		for _, a := range it.Addrs {
			if a == nil {
				continue
			}
			n := net.IPNet{IP: a.IP, Mask: a.Mask}
			if ip4 := n.IP.To4(); ip4 != nil {
				n.IP = ip4
				if len(n.Mask) == net.IPv6len {
					n.Mask = n.Mask[12:]
				}
			}
			ni.IPs = append(ni.IPs, n)
		}
		out = append(out, ni)
	}
	return out
}

// SyncPayload is the payload of the `sync` action sent right after the
// channel subscription is confirmed.
type SyncPayload struct {
	Version           string         `json:"version"`
	Distribution      string         `json:"distribution"`
	WatchdogVersion   string         `json:"watchdog_version"`
	OSVersion         string         `json:"os_version"`
	HardwarePlatform  string         `json:"hardware_platform"`
	RegistrationToken string         `json:"registration_token"`
	NetInterfaces     []NetInterface `json:"net_interfaces"`
}

// StatusRequest is the body of POST /clients/<unix_user>/status, the
// heartbeat used while the channel is down.
type StatusRequest struct {
	Version          string `json:"version"`
	Distribution     string `json:"distribution"`
	WatchdogVersion  string `json:"watchdog_version"`
	OSVersion        string `json:"os_version"`
	HardwarePlatform string `json:"hardware_platform"`
	// ServiceFirstPing is sent as the string "true" or "false": the service
	// counts a JSON boolean as false. Client.Status fills it from its
	// ServiceStart when one is set.
	ServiceFirstPing  BoolString     `json:"service_first_ping"`
	NetworkInterfaces []NetInterface `json:"network_interfaces"`
}

// BoolString is a boolean that travels as the string "true" or "false".
type BoolString bool

// MarshalJSON writes "true" or "false" as a JSON string.
func (b BoolString) MarshalJSON() ([]byte, error) {
	if b {
		return []byte(`"true"`), nil
	}
	return []byte(`"false"`), nil
}

// UnmarshalJSON accepts only the string forms, as the service does (a JSON
// boolean is an error here; the service would silently read it as false).
func (b *BoolString) UnmarshalJSON(p []byte) error {
	var s string
	if err := json.Unmarshal(p, &s); err != nil {
		return err
	}
	*b = s == "true"
	return nil
}

// StatusResponse is what the agent reads from a 200 status answer.
type StatusResponse struct {
	TestRequested bool `json:"test_requested"`
	// Update is set when the service has a newer agent version for this pod.
	Update *StatusUpdate `json:"update,omitempty"`
}

// StatusUpdate announces a version; URL is absolute (the agent never
// downloads it: the version names an image tag for the updater).
type StatusUpdate struct {
	Version string `json:"version"`
	URL     string `json:"url"`
}

// ConnectionInfo is the optional connection_info of a wireless
// measurement. Fields the pod cannot read (see package netif) are null.
type ConnectionInfo struct {
	BSSID *string `json:"bssid"`
	// Status is "connected" when the interface has an operational link,
	// else "disconnected".
	Status string `json:"status"`
	IP     string `json:"ip"`
	// Signal and Noise are in dBm.
	Signal *int `json:"signal"`
	// TxSpeed is the transmit bitrate in Mbit/s.
	TxSpeed *float64 `json:"tx_speed"`
	// Frequency and Width are in MHz.
	Frequency *int    `json:"frequency"`
	Channel   *int    `json:"channel"`
	Width     *int    `json:"width"`
	Noise     *int    `json:"noise"`
	SSID      *string `json:"ssid"`
}

// ConnectionInfoFor builds connection_info from what the kernel exposes
// without nl80211: link state, address, signal and (when the driver has
// one) noise.
func ConnectionInfoFor(it netif.Interface, w netif.WirelessInfo) ConnectionInfo {
	ci := ConnectionInfo{Status: "disconnected"}
	if it.Up {
		ci.Status = "connected"
	}
	if ip := it.SourceIP(); ip != nil {
		ci.IP = ip.String()
	}
	sig := w.SignalDBm
	ci.Signal = &sig
	if w.HasNoise {
		n := w.NoiseDBm
		ci.Noise = &n
	}
	return ci
}
