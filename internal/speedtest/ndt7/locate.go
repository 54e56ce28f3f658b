package ndt7

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	v2 "github.com/m-lab/locate/api/v2"
	mlab "github.com/m-lab/ndt7-client-go"
)

// locateError marks a failure of server discovery, which the library returns
// unwrapped and indistinguishable from a dial failure otherwise.
type locateError struct{ err error }

func (e *locateError) Error() string { return "locate: " + e.err.Error() }
func (e *locateError) Unwrap() error { return e.err }

// locator wraps M-Lab's locate client: it classifies its failures and adds
// the runner's extra query parameters to the target URLs (which already
// carry locate's access tokens, so they are merged, not replaced).
type locator struct {
	next   mlab.Locator
	params url.Values
}

func (l *locator) Nearest(ctx context.Context, service string) ([]v2.Target, error) {
	targets, err := l.next.Nearest(ctx, service)
	if err != nil {
		return nil, &locateError{err: err}
	}
	if len(targets) == 0 {
		return nil, &locateError{err: errors.New("no servers in the locate reply")}
	}
	if len(l.params) == 0 {
		return targets, nil
	}
	for i := range targets {
		urls := make(map[string]string, len(targets[i].URLs))
		for k, raw := range targets[i].URLs {
			u, err := url.Parse(raw)
			if err != nil {
				// Not err itself: it quotes the URL and its access token.
				return nil, &locateError{err: fmt.Errorf("unparsable target URL for %s", k)}
			}
			q := u.Query()
			for name, vals := range l.params {
				q[name] = vals
			}
			u.RawQuery = q.Encode()
			urls[k] = u.String()
		}
		targets[i].URLs = urls
	}
	return targets, nil
}
