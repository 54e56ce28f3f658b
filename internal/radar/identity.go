package radar

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/radarpod/radarpod/internal/atomicfile"
)

// IdentityFile is the name of the identity file in the data directory.
const IdentityFile = "identity.json"

// Identity is what registration issues and the pod keeps for life. Losing
// it makes a new pod, so it is persisted before anything else happens.
type Identity struct {
	ID         int64  `json:"id"`
	UnixUser   string `json:"unix_user"`
	Secret     string `json:"secret"`
	AccountID  *int64 `json:"account_id"`
	LocationID *int64 `json:"location_id"`
}

// Valid reports whether both credentials are present.
func (id Identity) Valid() bool { return id.UnixUser != "" && id.Secret != "" }

// String names the pod without its secret, so an Identity can be logged or
// wrapped in an error safely.
func (id Identity) String() string {
	return fmt.Sprintf("pod %s (id %d)", id.UnixUser, id.ID)
}

// GoString keeps %#v from printing the secret.
func (id Identity) GoString() string { return "radar.Identity{" + id.String() + "}" }

// LogValue is the slog form: everything but the secret.
func (id Identity) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("unix_user", id.UnixUser), slog.Int64("id", id.ID)}
	if id.AccountID != nil {
		attrs = append(attrs, slog.Int64("account_id", *id.AccountID))
	}
	if id.LocationID != nil {
		attrs = append(attrs, slog.Int64("location_id", *id.LocationID))
	}
	return slog.GroupValue(attrs...)
}

// clientToken is the HTTP JSON endpoints' Authorization header value.
func (id Identity) clientToken() string {
	return "ClientToken " + base64.StdEncoding.EncodeToString([]byte(id.UnixUser+":"+id.Secret))
}

// Secrets lists every form in which the pod's credentials leave it, for a
// redactor to hide wherever they would be written: the secret itself (the
// uploads' client_secret, and the channel's Basic credentials, which carry
// it raw) and the base64 credential of the ClientToken header, in which the
// secret does not appear as such (also unpadded, as it may be quoted).
func (id Identity) Secrets() []string {
	if id.Secret == "" {
		return nil
	}
	cred := []byte(id.UnixUser + ":" + id.Secret)
	return []string{id.Secret, base64.StdEncoding.EncodeToString(cred), base64.RawStdEncoding.EncodeToString(cred)}
}

// cableAuth is the WebSocket upgrade's Authorization header value: the
// service splits the raw "user:secret" after "Basic ", it does not decode
// base64 there.
func (id Identity) cableAuth() string { return "Basic " + id.UnixUser + ":" + id.Secret }

// LoadIdentity reads the identity from dataDir. ok is false (and err nil)
// when the pod has never registered.
func LoadIdentity(dataDir string) (id Identity, ok bool, err error) {
	path := filepath.Join(dataDir, IdentityFile)
	if err := atomicfile.ReadJSON(path, &id); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Identity{}, false, nil
		}
		return Identity{}, false, fmt.Errorf("load identity: %w", err)
	}
	if !id.Valid() {
		return Identity{}, false, fmt.Errorf("load identity: %s lacks unix_user or secret", path)
	}
	return id, true, nil
}

// SaveIdentity persists id atomically (temp, fsync, rename, fsync dir) with
// mode 0600: the file holds the pod secret.
func SaveIdentity(dataDir string, id Identity) error {
	if !id.Valid() {
		return errors.New("save identity: unix_user or secret missing")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	path := filepath.Join(dataDir, IdentityFile)
	if err := atomicfile.WriteJSON(path, id, 0o600); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	return nil
}
