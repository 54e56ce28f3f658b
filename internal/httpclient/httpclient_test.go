package httpclient

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNewSetsUserAgentUnlessPresent(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.UserAgent())
	}))
	defer srv.Close()
	c := New(Options{UserAgent: "RadarPodsAgent/1.0.0"})
	if _, err := c.Get(srv.URL); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("User-Agent", "explicit")
	if _, err := c.Do(req); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "RadarPodsAgent/1.0.0" || got[1] != "explicit" {
		t.Fatalf("user agents seen = %q", got)
	}
}

func TestReadLimited(t *testing.T) {
	tests := []struct {
		body    string
		max     int64
		wantErr bool
	}{
		{"hello", 5, false},
		{"hello", 10, false},
		{"hello!", 5, true},
		{"", 0, false},
	}
	for _, tt := range tests {
		b, err := ReadLimited(strings.NewReader(tt.body), tt.max)
		if tt.wantErr {
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("ReadLimited(%q, %d) err = %v, want ErrTooLarge", tt.body, tt.max, err)
			}
			continue
		}
		if err != nil || string(b) != tt.body {
			t.Errorf("ReadLimited(%q, %d) = %q, %v", tt.body, tt.max, b, err)
		}
	}
}

func TestLoadCertPoolRejectsGarbage(t *testing.T) {
	if _, err := LoadCertPool([]byte("not pem")); err == nil {
		t.Fatal("LoadCertPool accepted garbage")
	}
}
