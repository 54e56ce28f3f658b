package telemetry

import (
	"net/url"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Redacted replaces a secret wherever the pod writes text for others to read.
const Redacted = "[REDACTED]"

// Redactor removes known secret values (pod secret, registration token, DSN
// key) from log lines and Sentry events. Secrets are added as they become
// known: the pod secret only exists after registration.
//
// The rule: every non-empty secret is redacted, however short — an operator
// chooses the registration token, and a short one is still a credential.
// How a secret is matched depends on its length:
//
//   - a secret of at least wordMatchBelow characters is replaced wherever it
//     occurs, even inside a longer word (an Authorization header, a URL, a
//     base64 blob): at that length an accidental match in ordinary text is
//     not a concern;
//   - a shorter one is replaced only where it stands alone, i.e. not
//     directly preceded or followed by a letter or digit. "token=a" becomes
//     "token=[REDACTED]" and `"a"` becomes `"[REDACTED]"`, while "data" and
//     "Kb" are left readable. Replacing every "a" in every line would make
//     the log useless without protecting anything: a one-letter token that
//     appears inside a word is not legible there as the token.
type Redactor struct {
	mu sync.RWMutex
	// secrets is kept longest first, so a secret that contains another is
	// replaced whole before the shorter one could split it.
	secrets []string
}

// wordMatchBelow is the length under which a secret is only redacted as a
// whole word (see Redactor). Every secret the service issues (pod secret,
// 11 characters) and every DSN key is longer.
const wordMatchBelow = 8

// Add registers secret values; empty values are ignored.
func (r *Redactor) Add(secrets ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if s == "" {
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
	sort.SliceStable(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
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
		if !strings.Contains(s, secret) {
			continue
		}
		if len(secret) >= wordMatchBelow {
			s = strings.ReplaceAll(s, secret, Redacted)
		} else {
			s = replaceWord(s, secret)
		}
	}
	return s
}

// replaceWord replaces the occurrences of word in s that no letter or digit
// touches on either side.
func replaceWord(s, word string) string {
	var b strings.Builder
	copied := 0 // s[:copied] is in b
	for from := 0; from <= len(s)-len(word); {
		i := strings.Index(s[from:], word)
		if i < 0 {
			break
		}
		i += from
		end := i + len(word)
		before, _ := utf8.DecodeLastRuneInString(s[:i])
		after, _ := utf8.DecodeRuneInString(s[end:])
		if isWordRune(before) || isWordRune(after) {
			// Part of a longer word; occurrences may overlap ("aa" in
			// "aaa"), so look again one rune further.
			_, n := utf8.DecodeRuneInString(s[i:])
			from = i + n
			continue
		}
		b.WriteString(s[copied:i])
		b.WriteString(Redacted)
		copied, from = end, end
	}
	if copied == 0 {
		return s
	}
	b.WriteString(s[copied:])
	return b.String()
}

// isWordRune reports whether r continues a word. utf8.RuneError (the
// start or end of the string) does not.
func isWordRune(r rune) bool {
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r))
}
