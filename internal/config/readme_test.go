package config

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryVariable keeps the README's configuration tables
// true: every variable is listed, with the default the code applies.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, cfg := range []any{Agent{}, Updater{}} {
		for _, row := range Docs(cfg) {
			name, def := row[0], row[1]
			var line string
			for _, l := range strings.Split(readme, "\n") {
				if strings.HasPrefix(l, "| ") && strings.Contains(l, "`"+name+"`") {
					line = l
					break
				}
			}
			if line == "" {
				t.Errorf("README.md has no table row for %s", name)
				continue
			}
			if def != "" && !strings.Contains(line, def) {
				t.Errorf("README.md row for %s does not show its default %q: %s", name, def, line)
			}
		}
		// A bounded variable's row states its range as the code does.
		for _, f := range fieldsOf(cfg) {
			if f.min == "" {
				continue
			}
			want := "from `" + f.min + "` to `" + f.max + "`"
			found := false
			for _, l := range strings.Split(readme, "\n") {
				if strings.HasPrefix(l, "| ") && strings.Contains(l, "`"+f.name+"`") {
					found = found || strings.Contains(l, want)
				}
			}
			if !found {
				t.Errorf("README.md has no row for %s stating its range %q", f.name, want)
			}
		}
	}
}
