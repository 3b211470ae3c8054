package httpapi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// TokenFile is a bearer token read from a file, and read again when the
// file changes (checked at most once per CheckInterval), so that a rotated
// Kubernetes Secret takes effect without a restart. A file that becomes
// unreadable or empty keeps the previous token (and is logged). The token
// is never logged.
type TokenFile struct {
	path  string
	log   *zap.Logger
	now   func() time.Time
	every time.Duration

	mu      sync.Mutex
	token   []byte
	mod     time.Time
	size    int64
	checked time.Time
}

// CheckInterval is how often TokenFile looks at its file for a change.
const CheckInterval = time.Second

// NewTokenFile reads the token: the file's content without surrounding
// white space. A missing, unreadable or empty file is an error.
func NewTokenFile(path string, log *zap.Logger) (*TokenFile, error) {
	if log == nil {
		return nil, errors.New("cannot read the API token: no Logger")
	}
	t := &TokenFile{path: path, log: log, now: time.Now, every: CheckInterval}
	if err := t.load(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *TokenFile) load() error {
	fi, err := os.Stat(t.path)
	if err != nil {
		return fmt.Errorf("cannot read the API token file: %w", err)
	}
	data, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("cannot read the API token file: %w", err)
	}
	tok := bytes.TrimSpace(data)
	if len(tok) == 0 {
		return fmt.Errorf("the API token file %s is empty", t.path)
	}
	t.token, t.mod, t.size = tok, fi.ModTime(), fi.Size()
	return nil
}

// Token returns the current token.
func (t *TokenFile) Token() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now := t.now(); now.Sub(t.checked) >= t.every {
		t.checked = now
		fi, err := os.Stat(t.path)
		if err != nil || !fi.ModTime().Equal(t.mod) || fi.Size() != t.size {
			if err := t.load(); err != nil {
				t.log.Warn("keeping the previous API token", zap.Error(err))
			} else {
				t.log.Info("API token file changed: using the new token", zap.String("path", t.path))
			}
		}
	}
	return t.token
}

// auth wraps an API handler: with a token configured, a request needs
// "Authorization: Bearer <token>"; otherwise 401 with WWW-Authenticate.
func (a *api) auth(h http.HandlerFunc) http.Handler {
	if a.cfg.Token == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || got == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="healthscore"`)
			writeError(w, http.StatusUnauthorized, "a bearer token is required: send Authorization: Bearer <token>")
			return
		}
		// Compare digests: constant time, and no length leak.
		want, have := sha256.Sum256(a.cfg.Token()), sha256.Sum256([]byte(strings.TrimSpace(got)))
		if subtle.ConstantTimeCompare(want[:], have[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="healthscore", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "the bearer token is not valid")
			return
		}
		h(w, r)
	})
}
