package buildinfo

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// The names the field agent reports ("${GOOS}-${GOARCH}", plus "v${GOARM}"
// when GOARM is set), for the platforms pods run on and the build machines.
func TestDistribution(t *testing.T) {
	tests := []struct {
		goos, goarch, goarm string
		want                string
	}{
		{"linux", "arm64", "", "linux-arm64"},
		{"linux", "arm", "7", "linux-armv7"},
		{"linux", "arm", "6", "linux-armv6"},
		{"linux", "arm", "5", "linux-armv5"},
		{"linux", "amd64", "", "linux-amd64"},
		{"darwin", "arm64", "", "darwin-arm64"},
	}
	for _, tt := range tests {
		if got := distribution(tt.goos, tt.goarch, tt.goarm); got != tt.want {
			t.Errorf("distribution(%q, %q, %q) = %q, want %q", tt.goos, tt.goarch, tt.goarm, got, tt.want)
		}
	}
	if got, want := Distribution(), distribution(runtime.GOOS, runtime.GOARCH, GOARM()); got != want {
		t.Errorf("Distribution() = %q, want %q", got, want)
	}
	if got := Arch(); got != runtime.GOARCH {
		t.Errorf("Arch() = %q, want GOARCH %q", got, runtime.GOARCH)
	}
}

// GOARM() comes from build-constrained files: the go command must compile
// exactly one of them for every GOARM it accepts (with or without a float
// ABI suffix), and that one must name the version.
func TestGOARMFollowsTheToolchain(t *testing.T) {
	tests := []struct {
		goarch, goarm string
		want          string
	}{
		{"arm", "5", "5"},
		{"arm", "6", "6"},
		{"arm", "7", "7"},
		{"arm", "7,softfloat", "7"},
		{"arm", "6,hardfloat", "6"},
		{"arm64", "", ""},
		{"amd64", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.goarch+tt.goarm, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-f", `{{join .GoFiles " "}}`, ".")
			cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+tt.goarch, "GOARM="+tt.goarm, "CGO_ENABLED=0")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			var values []string
			for _, f := range strings.Fields(string(out)) {
				if v, ok := goarmConst(t, f); ok {
					values = append(values, v)
				}
			}
			if len(values) != 1 || values[0] != tt.want {
				t.Fatalf("GOARCH=%s GOARM=%s compiles goarm = %q (files %s), want exactly %q", tt.goarch, tt.goarm, values, out, tt.want)
			}
		})
	}
}

// goarmConst returns the value of the goarm constant file declares, if any.
func goarmConst(t *testing.T, file string) (string, bool) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Clean(file), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if n.Name != "goarm" {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s: goarm is not a string literal", file)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				return v, true
			}
		}
	}
	return "", false
}
