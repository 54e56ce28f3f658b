package netcheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/radarpod/radarpod/internal/config"
)

// LoadConfig reads both binaries' configuration from environ, as the pod's
// shared .env file gives it. The updater's pinned root CA file is not read:
// the network requirements do not depend on it, and the agent's container
// does not have it.
func LoadConfig(environ map[string]string) (config.Agent, config.Updater, error) {
	agent, aerr := config.LoadAgent(environ)
	updater, uerr := config.LoadUpdater(environ)
	var errs config.Errors
	var es config.Errors
	if errors.As(aerr, &es) {
		errs = append(errs, es...)
	} else if aerr != nil {
		return agent, updater, aerr
	}
	es = nil
	if errors.As(uerr, &es) {
		for _, e := range es {
			if e.Var == "RADAR_ROOT_CA_FILE" || containsVar(errs, e.Var) {
				continue // shared variables are reported once, by the agent
			}
			errs = append(errs, e)
		}
	} else if uerr != nil {
		return agent, updater, uerr
	}
	if len(errs) > 0 {
		return agent, updater, errs
	}
	return agent, updater, nil
}

func containsVar(es config.Errors, name string) bool {
	for _, e := range es {
		if e.Var == name {
			return true
		}
	}
	return false
}

// DefaultRequirements is the table of the default configuration, described
// generically (see Generic): the content of docs/network-requirements.md.
func DefaultRequirements() ([]Requirement, error) {
	agent, updater, err := LoadConfig(map[string]string{})
	if err != nil {
		return nil, fmt.Errorf("default configuration: %w", err)
	}
	return Requirements(agent, updater, Generic()), nil
}

// WriteDefaultDoc writes docs/network-requirements.md.
func WriteDefaultDoc(w io.Writer) error {
	reqs, err := DefaultRequirements()
	if err != nil {
		return err
	}
	return RenderMarkdown(w, reqs)
}

// RenderJSON writes the requirements as an indented JSON array.
func RenderJSON(w io.Writer, reqs []Requirement) error {
	if reqs == nil {
		reqs = []Requirement{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(reqs)
}

const mdIntro = `# Network access requirements

<!-- Generated from the default configuration by internal/netcheck; do not edit.
     Regenerate with: go generate ./internal/netcheck -->

Every connection a Radar pod makes, for the network administrators of the
places pods are installed in. The table is built from the pod's configuration;
this page shows the default one. On a pod:

- ` + "`radar-agent network-requirements`" + ` prints the table for that pod's own
  configuration (` + "`--format json`" + ` for machines);
- ` + "`radar-agent check-network`" + ` checks every row live (DNS, TCP, TLS with
  certificate verification, and a request that proves the real service
  answered) and names the failing step, for example "port 443 blocked or
  filtered (timeout)" or "TLS intercepted: certificate issued by X". It exits 0
  only when every required row passes.

No inbound connection is needed: a pod only connects out. Who needs a row:
*agent* and *updater* are the pod's two containers, *host* is the machine
(its Docker engine and package manager).

`

// RenderMarkdown writes the table and one section per row, in the style of
// the hand-written document it replaces.
func RenderMarkdown(w io.Writer, reqs []Requirement) error {
	var b strings.Builder
	b.WriteString(mdIntro)
	b.WriteString("| ID | Service | Domains | Protocol | Ports | TLS | Needed by | Required |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range reqs {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s | %s |\n",
			r.ID, cell(r.Service), cell(domainsText(r)), cell(r.Protocol), portsText(r.Ports),
			yesNo(r.TLS), strings.Join(r.Who, ", "), requiredText(r))
	}
	for _, r := range reqs {
		fmt.Fprintf(&b, "\n## %s\n\n", r.Service)
		b.WriteString(wrap(r.Why, 78))
		b.WriteString("\n\n")
		fmt.Fprintf(&b, "- **ID**: `%s`\n", r.ID)
		fmt.Fprintf(&b, "- **Domains**: %s\n", domainsText(r))
		fmt.Fprintf(&b, "- **Protocol**: %s\n", r.Protocol)
		fmt.Fprintf(&b, "- **Ports**: %s\n", portsText(r.Ports))
		tls := yesNo(r.TLS)
		if r.TLSNote != "" {
			tls += " — " + r.TLSNote
		}
		fmt.Fprintf(&b, "- **TLS**: %s\n", tls)
		fmt.Fprintf(&b, "- **Needed by**: %s\n", strings.Join(r.Who, ", "))
		fmt.Fprintf(&b, "- **When**: %s\n", r.When)
		if r.Required {
			b.WriteString("- **Required**: yes (check-network fails without it)\n")
		} else {
			b.WriteString("- **Required**: no (informational)\n")
		}
		if len(r.Checks) > 0 {
			b.WriteString("- **check-network**:")
			if len(r.Checks) == 1 {
				fmt.Fprintf(&b, " %s\n", r.Checks[0].Describe())
			} else {
				b.WriteString("\n")
				for _, p := range r.Checks {
					fmt.Fprintf(&b, "  - %s\n", p.Describe())
				}
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func domainsText(r Requirement) string {
	parts := make([]string, 0, len(r.Domains)+1)
	for _, d := range r.Domains {
		parts = append(parts, "`"+d+"`")
	}
	if r.DomainsNote != "" {
		parts = append(parts, r.DomainsNote)
	}
	return strings.Join(parts, ", ")
}

func portsText(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}

func requiredText(r Requirement) string {
	if r.Required {
		return "yes"
	}
	return "no (informational)"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// wrap breaks prose at width so the generated file reads well in a diff.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		if i > 0 {
			if n+1+len(word) > width {
				b.WriteByte('\n')
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}
