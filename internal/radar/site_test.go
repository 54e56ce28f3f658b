package radar

import "testing"

func TestSiteURLs(t *testing.T) {
	tests := []struct {
		server, root, signIn string
		err                  bool
	}{
		{"https://radar.exactlylabs.com", "https://radar.exactlylabs.com/", "/users/sign_in", false},
		{"http://127.0.0.1:3000/", "http://127.0.0.1:3000/", "/users/sign_in", false},
		{"https://radar.example.org/pods", "https://radar.example.org/pods/", "/pods/users/sign_in", false},
		{"https://u:p@radar.example.org/?q=1#f", "https://radar.example.org/", "/users/sign_in", false},
		{"ftp://radar.example.org", "", "", true},
	}
	for _, tt := range tests {
		root, signIn, err := SiteURLs(tt.server)
		if (err != nil) != tt.err || root != tt.root || signIn != tt.signIn {
			t.Errorf("SiteURLs(%q) = %q, %q, %v; want %q, %q, error %v", tt.server, root, signIn, err, tt.root, tt.signIn, tt.err)
		}
	}
}
