package radar

import (
	"context"
	"time"
)

// SetWait replaces the reconnect wait, so tests see every delay Run chose.
func SetWait(c *CableClient, f func(ctx context.Context, d time.Duration) error) { c.wait = f }
