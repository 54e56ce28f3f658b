package netcheck

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/radarpod/radarpod/internal/config"
)

// Exit statuses of the two subcommands.
const (
	ExitOK     = 0
	ExitFailed = 1 // a required row failed
	ExitUsage  = config.ExitCode
)

// RequirementsCommand is `radar-agent network-requirements [--format
// markdown|json]`: the table for the configuration in environ.
func RequirementsCommand(args []string, environ map[string]string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("network-requirements", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "markdown", "output format: markdown or json")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: radar-agent network-requirements [--format markdown|json]\n\n"+
			"Prints every connection this pod needs (service, why, domains, protocol, ports, TLS, who needs it),\n"+
			"derived from its configuration.\n\n")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *format != "markdown" && *format != "json" {
		fmt.Fprintf(stderr, "network-requirements: unknown --format %q; allowed: markdown, json\n", *format)
		return ExitUsage
	}
	agent, updater, err := LoadConfig(environ)
	if err != nil {
		fmt.Fprintln(stderr, "network-requirements:", err)
		return ExitUsage
	}
	reqs := Requirements(agent, updater)
	if *format == "json" {
		err = RenderJSON(stdout, reqs)
	} else {
		err = RenderMarkdown(stdout, reqs)
	}
	if err != nil {
		fmt.Fprintln(stderr, "network-requirements:", err)
		return ExitFailed
	}
	return ExitOK
}

// CheckCommand is `radar-agent check-network [--format table|json]
// [--timeout d]`: the live check of the configuration in environ. It exits
// 0 only when every required row passes.
func CheckCommand(ctx context.Context, args []string, environ map[string]string, stdout, stderr io.Writer) int {
	return checkCommand(ctx, args, environ, stdout, stderr, CheckOptions{})
}

// checkCommand takes the options tests inject (resolver, dialer, roots);
// flags and environ fill in the rest.
func checkCommand(ctx context.Context, args []string, environ map[string]string, stdout, stderr io.Writer, opts CheckOptions, reqOpts ...Option) int {
	fs := flag.NewFlagSet("check-network", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "table", "output format: table or json")
	timeout := fs.Duration("timeout", 60*time.Second, "overall deadline of the check")
	stepTimeout := fs.Duration("step-timeout", 5*time.Second, "deadline of each DNS lookup, connect and TLS handshake")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: radar-agent check-network [--format table|json] [--timeout 60s] [--step-timeout 5s]\n\n"+
			"Checks every connection this pod needs, live: DNS, TCP, TLS with certificate verification and a\n"+
			"request that proves the service answered. Exits 0 only when every required row passes.\n\n")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintf(stderr, "check-network: unknown --format %q; allowed: table, json\n", *format)
		return ExitUsage
	}
	if *timeout <= 0 || *stepTimeout <= 0 {
		fmt.Fprintln(stderr, "check-network: --timeout and --step-timeout must be positive")
		return ExitUsage
	}
	agent, updater, err := LoadConfig(environ)
	if err != nil {
		fmt.Fprintln(stderr, "check-network:", err)
		return ExitUsage
	}
	if opts.Proxy == nil {
		opts.Proxy = proxyFromEnviron(environ)
		for _, name := range unusableProxyVars(environ) {
			fmt.Fprintf(stderr, "check-network: warning: %s is not a valid proxy URL; the pod's clients ignore it, and so does this check\n", name)
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if opts.Timeout == 0 || set["timeout"] {
		opts.Timeout = *timeout
	}
	if opts.StepTimeout == 0 || set["step-timeout"] {
		opts.StepTimeout = *stepTimeout
	}
	report := Check(ctx, Requirements(agent, updater, reqOpts...), opts)
	if *format == "json" {
		err = RenderReportJSON(stdout, report)
	} else {
		err = RenderTable(stdout, report)
	}
	if err != nil {
		fmt.Fprintln(stderr, "check-network:", err)
		return ExitFailed
	}
	if !report.OK() {
		return ExitFailed
	}
	return ExitOK
}

func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, true
		}
		return ExitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return ExitUsage, true
	}
	return 0, false
}

// proxyFromEnviron reads the proxy variables from environ (not from the
// process, which net/http caches once) with net/http's own rules.
func proxyFromEnviron(environ map[string]string) func(*http.Request) (*url.URL, error) {
	get := func(names ...string) string {
		for _, n := range names {
			if v := environ[n]; v != "" {
				return v
			}
		}
		return ""
	}
	cfg := &httpproxy.Config{
		HTTPProxy:  get("HTTP_PROXY", "http_proxy"),
		HTTPSProxy: get("HTTPS_PROXY", "https_proxy"),
		NoProxy:    get("NO_PROXY", "no_proxy"),
	}
	f := cfg.ProxyFunc()
	return func(r *http.Request) (*url.URL, error) { return f(r.URL) }
}

// unusableProxyVars names the proxy variables net/http silently ignores
// because they do not parse (never their values: they may hold passwords).
func unusableProxyVars(environ map[string]string) []string {
	var bad []string
	for _, name := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		v := environ[name]
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err == nil && u.Scheme != "" && u.Host != "" {
			continue
		}
		if _, err := url.Parse("http://" + v); err == nil {
			continue
		}
		bad = append(bad, name)
	}
	return bad
}
