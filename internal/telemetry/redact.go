package telemetry

import (
	"net/url"
	"strings"
	"sync"
)

// Redacted replaces a secret wherever the pod writes text for others to read.
const Redacted = "[REDACTED]"

// Redactor removes known secret values (pod secret, registration token, DSN
// key) from log lines and Sentry events. Secrets are added as they become
// known: the pod secret only exists after registration.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string
}

// minSecretLen keeps short values from turning ordinary words into
// "[REDACTED]"; every real secret here is at least 11 characters.
const minSecretLen = 6

// Add registers secret values; empty and very short values are ignored.
func (r *Redactor) Add(secrets ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if len(s) < minSecretLen {
			continue
		}
		dup := false
		for _, have := range r.secrets {
			dup = dup || have == s
		}
		if !dup {
			r.secrets = append(r.secrets, s)
		}
	}
}

// AddDSN registers a Sentry DSN and its public key.
func (r *Redactor) AddDSN(dsn string) {
	if dsn == "" {
		return
	}
	r.Add(dsn)
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		r.Add(u.User.Username())
		if p, ok := u.User.Password(); ok {
			r.Add(p)
		}
	}
}

// String returns s with every registered secret replaced.
func (r *Redactor) String(s string) string {
	if r == nil || s == "" {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, secret := range r.secrets {
		if strings.Contains(s, secret) {
			s = strings.ReplaceAll(s, secret, Redacted)
		}
	}
	return s
}
