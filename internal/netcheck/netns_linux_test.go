package netcheck

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// childSpecEnv carries the check a child process runs inside a network
// namespace: the test binary re-executed by `ip netns exec`.
const childSpecEnv = "RADAR_NETCHECK_CHILD_SPEC"

type childSpec struct {
	Args         []string          `json:"args"`
	Environ      map[string]string `json:"environ"`
	DNS          string            `json:"dns"`
	Routes       map[string]string `json:"routes"`
	CAFile       string            `json:"ca_file"`
	LocateURL    string            `json:"locate_url"`
	OoklaListURL string            `json:"ookla_list_url"`
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childSpecEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

// runChild is check-network as the pod runs it, with the world's resolver,
// address map and CA: the only test hooks are the injected options.
func runChild(raw string) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "child spec:", err)
		return 99
	}
	pemBytes, err := os.ReadFile(spec.CAFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child CA:", err)
		return 99
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	opts := CheckOptions{Resolver: resolverFor(spec.DNS), Dialer: &mapDialer{routes: spec.Routes}, RootCAs: roots}
	return checkCommand(context.Background(), spec.Args, spec.Environ, os.Stdout, os.Stderr, opts,
		WithLocateURL(spec.LocateURL), WithOoklaServerList(spec.OoklaListURL))
}

// netns is a network namespace joined to the host by a veth pair.
type netns struct {
	name             string
	hostIP, insideIP string
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test creates a network namespace and needs root")
	}
	b := make([]byte, 4)
	rand.Read(b)
	id := hex.EncodeToString(b)[:7]
	// A random /30 in the shared address space (RFC 6598), which nothing
	// on a test machine routes.
	base := net.IPv4(100, 64+b[0]%64, b[1], b[2]&^3).To4()
	host, inside := net.IP(append([]byte(nil), base...)), net.IP(append([]byte(nil), base...))
	host[3]++
	inside[3] += 2
	n := &netns{name: "rpnc-" + id, hostIP: host.String(), insideIP: inside.String()}
	vethHost, vethInside := "rpnh"+id, "rpni"+id

	run(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() {
		// Deleting the namespace destroys its end of the pair, and with
		// it the host's end; the explicit delete covers a failed move.
		exec.Command("ip", "netns", "del", n.name).Run()
		exec.Command("ip", "link", "del", vethHost).Run()
	})
	run(t, "ip", "link", "add", vethHost, "type", "veth", "peer", "name", vethInside)
	run(t, "ip", "link", "set", vethInside, "netns", n.name)
	run(t, "ip", "addr", "add", n.hostIP+"/30", "dev", vethHost)
	run(t, "ip", "link", "set", vethHost, "up")
	run(t, "ip", "-n", n.name, "addr", "add", n.insideIP+"/30", "dev", vethInside)
	run(t, "ip", "-n", n.name, "link", "set", vethInside, "up")
	run(t, "ip", "-n", n.name, "link", "set", "lo", "up")
	return n
}

// block replaces the namespace's firewall: outgoing TCP to the host on
// these ports is dropped, as a site firewall silently does.
func (n *netns) block(t *testing.T, ports ...int) {
	t.Helper()
	exec.Command("ip", "netns", "exec", n.name, "nft", "delete", "table", "inet", "radar_netcheck_test").Run()
	list := make([]string, len(ports))
	for i, p := range ports {
		list[i] = fmt.Sprint(p)
	}
	rules := fmt.Sprintf(`table inet radar_netcheck_test {
	chain output {
		type filter hook output priority 0; policy accept;
		ip daddr %s tcp dport { %s } drop
	}
}
`, n.hostIP, strings.Join(list, ", "))
	cmd := exec.Command("ip", "netns", "exec", n.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s\n%s", err, out, rules)
	}
}

// check runs check-network inside the namespace, as a child process.
func (n *netns) check(t *testing.T, w *world) (int, Report) {
	t.Helper()
	spec, _ := json.Marshal(childSpec{
		Args:    []string{"--format", "json", "--timeout", "60s", "--step-timeout", "2s"},
		Environ: w.env, DNS: w.dns.addr, Routes: w.routes, CAFile: w.ca.pemPath,
		LocateURL: w.locateURL, OoklaListURL: w.ooklaListURL,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.name, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childSpecEnv+"="+string(spec))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code <= 0 {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	return code, decodeReport(t, stdout.Bytes(), stderr.String())
}

// TestBlockedPortsInANamespace runs the check from inside a network
// namespace whose firewall drops some ports, against real servers outside
// it: exactly the rows behind those ports fail, each saying the port is
// blocked, and the exit status follows the required rows only.
func TestBlockedPortsInANamespace(t *testing.T) {
	ns := newNetns(t)
	w := newWorld(t, ns.hostIP)

	ns.block(t, w.port["pods"], w.port["sentry"], w.port[roleOokla5060], w.port["apt"])
	code, report := ns.check(t, w)
	if code != ExitFailed {
		t.Errorf("exit %d, want %d", code, ExitFailed)
	}
	want := map[string]string{
		RowPods:   fmt.Sprintf("port %d blocked or filtered (timeout)", w.port["pods"]),
		RowSentry: fmt.Sprintf("port %d blocked or filtered (timeout)", w.port["sentry"]),
		RowOokla:  "none of 2 servers reachable on port 5060: port 5060 blocked or filtered (timeout)",
		RowAPT:    "port 80 blocked or filtered (timeout)",
	}
	assertExactlyBlocked(t, report, want)
	// The open ports carried everything else, from inside the namespace.
	rows := rowsByID(report)
	for _, id := range []string{RowLocate, RowNDT7, RowOoklaAPI, RowCRL, RowRegistry} {
		if rows[id].Verdict != Pass {
			t.Errorf("row %s should pass through the open ports: %+v", id, rows[id])
		}
	}
	if !strings.Contains(probeTargetsJoined(rows[RowOokla]), "ookla2.test:8080") {
		t.Errorf("ookla should have checked every listed server: %v", probeTargets(rows[RowOokla]))
	}

	// Only the host's package repositories blocked: informational, so the
	// check passes while saying so.
	ns.block(t, w.port["apt"])
	code, report = ns.check(t, w)
	if code != ExitOK {
		t.Errorf("exit %d with only the informational row blocked, want 0", code)
	}
	assertExactlyBlocked(t, report, map[string]string{RowAPT: "port 80 blocked or filtered (timeout)"})
	// With its port open the pods service answers its root with the
	// redirect to the sign-in page.
	if row := rowsByID(report)[RowPods]; row.Verdict != Pass || !probeDetailContains(row, "HTTP 301 Moved Permanently") {
		t.Errorf("pods through its open port: %+v", row)
	}
}

func assertExactlyBlocked(t *testing.T, report Report, want map[string]string) {
	t.Helper()
	var ids []string
	for id := range want {
		ids = append(ids, id)
	}
	if got := failedIDs(report); !sameSet(got, ids) {
		t.Errorf("failing rows %v, want exactly %v", got, ids)
	}
	rows := rowsByID(report)
	for id, hint := range want {
		row := rows[id]
		if row.Verdict != Fail || row.Step != StepTCP || !strings.Contains(row.Hint, hint) {
			t.Errorf("row %s: %s at %q: %q\nwant tcp: %q", id, row.Verdict, row.Step, row.Hint, hint)
		}
	}
}

func probeTargetsJoined(row RowResult) string { return strings.Join(probeTargets(row), " ") }
