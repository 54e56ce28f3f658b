package radar

import (
	"fmt"
	"net/url"
	"strings"
)

// SignInPath is where the service's root redirects (its Rails route
// `root to: redirect('/users/sign_in')`, a 301). The root is the one
// request that proves the real service answered without being a pod's:
// the service has no health endpoint, and it logs a channel upgrade
// without credentials as a pod failing to log in.
const SignInPath = "/users/sign_in"

// SiteURLs returns the service's root URL and the path its redirect
// leads to, both under the server URL's path (a service mounted below a
// prefix redirects within it).
func SiteURLs(serverURL string) (root, signInPath string, err error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", "", fmt.Errorf("site URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", "", fmt.Errorf("site URL: scheme %q is not http or https", u.Scheme)
	}
	base := strings.TrimRight(u.Path, "/")
	u.Path = base + "/"
	u.RawPath, u.RawQuery, u.Fragment, u.User = "", "", "", nil
	return u.String(), base + SignInPath, nil
}
