package radartest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"sort"
)

// field kinds the strict payload checks know.
type kind int

const (
	kString         kind = iota // any JSON string
	kNonEmpty                   // a non-empty JSON string
	kStringOrNull               // a JSON string or null
	kBoolString                 // the string "true" or "false"
	kInterfaces                 // an array of network interfaces
	kInterfacesNull             // same, or null
)

var syncSpec = map[string]kind{
	"version":            kNonEmpty,
	"distribution":       kNonEmpty,
	"watchdog_version":   kString,
	"os_version":         kNonEmpty,
	"hardware_platform":  kNonEmpty,
	"registration_token": kString,
	"net_interfaces":     kInterfaces,
}

var statusSpec = map[string]kind{
	"version":            kNonEmpty,
	"distribution":       kNonEmpty,
	"watchdog_version":   kString,
	"os_version":         kNonEmpty,
	"hardware_platform":  kNonEmpty,
	"service_first_ping": kBoolString,
	"network_interfaces": kInterfaces,
}

var registerSpec = map[string]kind{
	"registration_token": kStringOrNull,
	"name":               kStringOrNull,
	"register_label":     kStringOrNull,
}

// checkObject returns every way raw differs from spec: not an object,
// missing keys, extra keys, wrongly typed values.
func checkObject(what string, raw []byte, spec map[string]kind) []string {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return []string{fmt.Sprintf("%s is not a JSON object: %.200s", what, raw)}
	}
	var out []string
	for _, k := range sortedKeys(spec) {
		v, ok := obj[k]
		if !ok {
			out = append(out, fmt.Sprintf("%s lacks %q", what, k))
			continue
		}
		out = append(out, checkValue(what+"."+k, v, spec[k])...)
	}
	for _, k := range sortedKeys(obj) {
		if _, ok := spec[k]; !ok {
			out = append(out, fmt.Sprintf("%s has unexpected key %q", what, k))
		}
	}
	return out
}

func checkValue(what string, v json.RawMessage, k kind) []string {
	v = bytes.TrimSpace(v)
	isNull := string(v) == "null"
	var s string
	isString := json.Unmarshal(v, &s) == nil && len(v) > 0 && v[0] == '"'
	switch k {
	case kString:
		if !isString {
			return []string{fmt.Sprintf("%s is %s, want a string", what, v)}
		}
	case kNonEmpty:
		if !isString || s == "" {
			return []string{fmt.Sprintf("%s is %s, want a non-empty string", what, v)}
		}
	case kStringOrNull:
		if !isString && !isNull {
			return []string{fmt.Sprintf("%s is %s, want a string or null", what, v)}
		}
	case kBoolString:
		if string(v) == "true" || string(v) == "false" {
			return []string{fmt.Sprintf("%s is the JSON boolean %s; the service wants the string \"true\"/\"false\" (a boolean counts as false)", what, v)}
		}
		if !isString || (s != "true" && s != "false") {
			return []string{fmt.Sprintf("%s is %s, want \"true\" or \"false\"", what, v)}
		}
	case kInterfaces, kInterfacesNull:
		if isNull {
			if k == kInterfacesNull {
				return nil
			}
			return []string{fmt.Sprintf("%s is null, want an array of interfaces", what)}
		}
		return checkInterfaces(what, v)
	}
	return nil
}

var ifaceSpec = []string{"name", "mac", "is_wlan", "default", "ips"}

func checkInterfaces(what string, v json.RawMessage) []string {
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(v, &list); err != nil {
		return []string{fmt.Sprintf("%s is not an array of objects: %.200s", what, v)}
	}
	var out []string
	defaults := 0
	for i, it := range list {
		w := fmt.Sprintf("%s[%d]", what, i)
		if it == nil {
			out = append(out, w+" is null")
			continue
		}
		for _, k := range ifaceSpec {
			if _, ok := it[k]; !ok {
				out = append(out, fmt.Sprintf("%s lacks %q", w, k))
			}
		}
		for _, k := range sortedKeys(it) {
			known := false
			for _, s := range ifaceSpec {
				known = known || s == k
			}
			if !known {
				out = append(out, fmt.Sprintf("%s has unexpected key %q", w, k))
			}
		}
		if raw, ok := it["name"]; ok {
			out = append(out, checkValue(w+".name", raw, kNonEmpty)...)
		}
		if raw, ok := it["mac"]; ok {
			out = append(out, checkValue(w+".mac", raw, kString)...)
		}
		for _, b := range []string{"is_wlan", "default"} {
			raw, ok := it[b]
			if !ok {
				continue
			}
			var x bool
			if json.Unmarshal(raw, &x) != nil {
				out = append(out, fmt.Sprintf("%s.%s is %s, want a boolean", w, b, raw))
			} else if b == "default" && x {
				defaults++
			}
		}
		if raw, ok := it["ips"]; ok {
			out = append(out, checkIPs(w+".ips", raw)...)
		}
	}
	if defaults > 1 {
		out = append(out, fmt.Sprintf("%s marks %d interfaces as default", what, defaults))
	}
	return out
}

// checkIPs wants what Go's net.IPNet marshals: {"IP":"a.b.c.d","Mask":
// "<base64>"} with a 4-byte mask for IPv4 and 16 bytes for IPv6.
func checkIPs(what string, v json.RawMessage) []string {
	if string(bytes.TrimSpace(v)) == "null" {
		return nil
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(v, &list); err != nil {
		return []string{fmt.Sprintf("%s is neither null nor an array of objects: %.200s", what, v)}
	}
	var out []string
	for i, n := range list {
		w := fmt.Sprintf("%s[%d]", what, i)
		if len(n) != 2 {
			out = append(out, fmt.Sprintf("%s has keys %v, want exactly IP and Mask", w, sortedKeys(n)))
		}
		var ipS, maskS string
		if json.Unmarshal(n["IP"], &ipS) != nil {
			out = append(out, fmt.Sprintf("%s.IP is not a string", w))
			continue
		}
		ip := net.ParseIP(ipS)
		if ip == nil {
			out = append(out, fmt.Sprintf("%s.IP %q is not an IP address", w, ipS))
			continue
		}
		if json.Unmarshal(n["Mask"], &maskS) != nil {
			out = append(out, fmt.Sprintf("%s.Mask is not a string", w))
			continue
		}
		mask, err := base64.StdEncoding.DecodeString(maskS)
		if err != nil {
			out = append(out, fmt.Sprintf("%s.Mask %q is not base64", w, maskS))
			continue
		}
		want := net.IPv6len
		if ip.To4() != nil {
			want = net.IPv4len
		}
		if len(mask) != want {
			out = append(out, fmt.Sprintf("%s.Mask of %s is %d bytes (%q), want %d", w, ipS, len(mask), maskS, want))
		} else if ones, bits := net.IPMask(mask).Size(); ones == 0 && bits == 0 {
			out = append(out, fmt.Sprintf("%s.Mask %q is not a prefix mask", w, maskS))
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
