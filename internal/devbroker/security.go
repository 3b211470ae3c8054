package devbroker

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SASL mechanisms the broker accepts (kfake has no OAUTHBEARER).
var saslMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// User is a SASL user of the broker. A Super user bypasses ACLs.
type User struct {
	Mechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	Name      string
	Password  string
	Super     bool
}

// String shows the user without its password.
func (u User) String() string {
	s := u.Mechanism + ":" + u.Name
	if u.Super {
		s += " (superuser)"
	}
	return s
}

// ParseUser parses "MECHANISM:NAME:PASSWORD" (the password may contain ':').
// Its errors never contain the password.
func ParseUser(spec string) (User, error) {
	parts := strings.SplitN(spec, ":", 3)
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return User{}, errors.New("a SASL user is MECHANISM:NAME:PASSWORD, e.g. SCRAM-SHA-256:alice:secret")
	}
	u := User{Mechanism: strings.ToUpper(parts[0]), Name: parts[1], Password: parts[2]}
	if !slices.Contains(saslMechanisms, u.Mechanism) {
		return User{}, fmt.Errorf("SASL user %s: mechanism %q is not one of %s", u.Name, parts[0], strings.Join(saslMechanisms, ", "))
	}
	return u, nil
}

// ACL allows (or, with Deny, denies) a user operations on a resource.
type ACL struct {
	User       string               // SASL user name (of a Config.Users entry)
	Resource   kmsg.ACLResourceType // topic, group, cluster or transactional-id
	Name       string               // resource name; "*" for all; for the cluster "kafka-cluster"
	Prefixed   bool                 // Name is a prefix
	Operations []kmsg.ACLOperation
	Deny       bool
}

var aclResources = map[string]kmsg.ACLResourceType{
	"topic": kmsg.ACLResourceTypeTopic, "group": kmsg.ACLResourceTypeGroup,
	"cluster": kmsg.ACLResourceTypeCluster, "transactional-id": kmsg.ACLResourceTypeTransactionalId,
}

// String is the spec ParseACL reads.
func (a ACL) String() string {
	ops := make([]string, len(a.Operations))
	for i, o := range a.Operations {
		ops[i] = strings.ToLower(o.String())
	}
	res := strings.ToLower(strings.ReplaceAll(a.Resource.String(), "_", "-"))
	name := a.Name
	if a.Prefixed {
		name += "*"
	}
	s := fmt.Sprintf("%s:%s:%s:%s", a.User, res, name, strings.Join(ops, ","))
	if a.Deny {
		s += ":deny"
	}
	return s
}

// ParseACL parses "USER:RESOURCE:NAME:OPERATION[,OPERATION…][:deny]":
// RESOURCE is topic, group, cluster or transactional-id; NAME is a literal
// name, "*" for every resource of that type, or a prefix ending in "*"
// ("customer-*"); the cluster's name is kafka-cluster (or "*"). OPERATION is
// one of Kafka's: read, write, create, delete, alter, describe,
// cluster_action, describe_configs, alter_configs, idempotent_write, all.
// Examples: "svc:topic:customer-events:read", "svc:group:healthscore:read",
// "svc:cluster:kafka-cluster:idempotent_write".
func ParseACL(spec string) (ACL, error) {
	parts := strings.Split(spec, ":")
	deny := len(parts) == 5 && strings.EqualFold(parts[4], "deny")
	if deny {
		parts = parts[:4]
	}
	const form = "an ACL is USER:RESOURCE:NAME:OPERATION[,OPERATION…][:deny], e.g. svc:topic:customer-events:read,describe"
	if len(parts) != 4 || parts[0] == "" || parts[2] == "" || parts[3] == "" {
		return ACL{}, fmt.Errorf("ACL %q: %s", spec, form)
	}
	res, ok := aclResources[strings.ToLower(parts[1])]
	if !ok {
		return ACL{}, fmt.Errorf("ACL %q: resource %q is not topic, group, cluster or transactional-id", spec, parts[1])
	}
	a := ACL{User: parts[0], Resource: res, Name: parts[2], Deny: deny}
	if len(a.Name) > 1 && strings.HasSuffix(a.Name, "*") {
		a.Name, a.Prefixed = strings.TrimSuffix(a.Name, "*"), true
	}
	if res == kmsg.ACLResourceTypeCluster && a.Name != "kafka-cluster" && a.Name != "*" {
		return ACL{}, fmt.Errorf("ACL %q: the cluster resource is named kafka-cluster", spec)
	}
	for _, op := range strings.Split(parts[3], ",") {
		o, err := kmsg.ParseACLOperation(strings.ReplaceAll(strings.TrimSpace(op), "-", "_"))
		if err != nil || o == kmsg.ACLOperationUnknown || o == kmsg.ACLOperationAny {
			return ACL{}, fmt.Errorf("ACL %q: unknown operation %q (read, write, create, delete, alter, describe, cluster_action, describe_configs, alter_configs, idempotent_write, all)", spec, op)
		}
		a.Operations = append(a.Operations, o)
	}
	return a, nil
}

// ReadSpecFile reads one spec per line (ParseUser's or ParseACL's format),
// skipping blank lines and lines starting with '#'.
func ReadSpecFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// securityOpts turns the security settings of cfg into kfake options.
func (cfg Config) securityOpts() ([]kfake.Opt, error) {
	var opts []kfake.Opt
	if len(cfg.Users) > 0 {
		opts = append(opts, kfake.EnableSASL())
	}
	if cfg.TLS != nil || len(cfg.Users) > 0 {
		// TLS is done here rather than by kfake.TLS so that the SASL
		// handshake fix (handshake.go) sees plaintext.
		opts = append(opts, kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err != nil {
				return nil, err
			}
			return listener{Listener: ln, tls: cfg.TLS}, nil
		}))
	}
	if len(cfg.ACLs) > 0 && !cfg.EnableACLs {
		return nil, errors.New("ACLs are given but EnableACLs is false")
	}
	if cfg.EnableACLs {
		opts = append(opts, kfake.EnableACLs())
	}
	// kfake seeds ACLs with their user: group them by user name.
	pending := map[string][]kfake.ACL{}
	for _, a := range cfg.ACLs {
		if len(a.Operations) == 0 {
			return nil, fmt.Errorf("ACL %s: no operation", a)
		}
		name := a.Name
		if a.Resource == kmsg.ACLResourceTypeCluster {
			name = "kafka-cluster"
		}
		pattern := kmsg.ACLResourcePatternTypeLiteral
		if a.Prefixed {
			pattern = kmsg.ACLResourcePatternTypePrefixed
		}
		for _, op := range a.Operations {
			pending[a.User] = append(pending[a.User], kfake.ACL{Resource: a.Resource, Name: name, Pattern: pattern, Operation: op, Allow: !a.Deny})
		}
	}
	seen := map[string]bool{}
	for _, u := range cfg.Users {
		if !slices.Contains(saslMechanisms, u.Mechanism) {
			return nil, fmt.Errorf("SASL user %s: mechanism %q is not one of %s", u.Name, u.Mechanism, strings.Join(saslMechanisms, ", "))
		}
		if u.Name == "" || u.Password == "" {
			return nil, fmt.Errorf("SASL user %q: a name and a password are required", u.Name)
		}
		k := u.Mechanism + ":" + u.Name
		if seen[k] {
			return nil, fmt.Errorf("SASL user %s is given twice", k)
		}
		seen[k] = true
		if u.Super {
			if len(pending[u.Name]) > 0 {
				return nil, fmt.Errorf("ACLs for %s: a superuser bypasses ACLs, drop them", u.Name)
			}
			opts = append(opts, kfake.Superuser(u.Mechanism, u.Name, u.Password))
			continue
		}
		// ACLs hold for the principal User:NAME whatever the mechanism:
		// seed them with the first of its mechanisms.
		opts = append(opts, kfake.User(u.Mechanism, u.Name, u.Password, pending[u.Name]...))
		delete(pending, u.Name)
	}
	if len(pending) > 0 {
		names := slices.Sorted(maps.Keys(pending))
		return nil, fmt.Errorf("ACLs for %s, not SASL users of the broker: add the users", strings.Join(names, ", "))
	}
	return opts, nil
}

// TLSFiles are the PEM files GenerateTLS writes.
type TLSFiles struct {
	CA         string // the CA certificate clients trust (--kafka-tls-ca)
	Cert, Key  string // the broker's certificate and key
	ClientCert string // a client certificate signed by the CA (for mutual TLS)
	ClientKey  string
}

// GenerateTLS creates a throw-away CA in dir and signs with it a broker
// certificate for 127.0.0.1, ::1 and localhost and a client certificate
// (CN healthscore-client), valid for validFor. Keys are ECDSA P-256,
// written 0600. Files: ca.pem, broker.pem, broker-key.pem, client.pem,
// client-key.pem.
func GenerateTLS(dir string, validFor time.Duration) (TLSFiles, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return TLSFiles{}, fmt.Errorf("cannot create the TLS directory: %w", err)
	}
	now := time.Now().Add(-time.Minute)
	newKey := func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120)) // crypto/rand does not fail
		return n
	}
	caKey, err := newKey()
	if err != nil {
		return TLSFiles{}, fmt.Errorf("cannot generate a key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "healthscore dev-broker CA"},
		NotBefore: now, NotAfter: now.Add(validFor), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return TLSFiles{}, fmt.Errorf("cannot create the CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return TLSFiles{}, fmt.Errorf("cannot parse the CA certificate: %w", err)
	}
	files := TLSFiles{
		CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "broker.pem"), Key: filepath.Join(dir, "broker-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
	}
	if err := writePEM(files.CA, "CERTIFICATE", caDER, 0o644); err != nil {
		return TLSFiles{}, err
	}
	leaf := func(cn string, usage x509.ExtKeyUsage, certPath, keyPath string, server bool) error {
		key, err := newKey()
		if err != nil {
			return fmt.Errorf("cannot generate a key: %w", err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
			NotBefore: now, NotAfter: now.Add(validFor),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if server {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return fmt.Errorf("cannot create the %s certificate: %w", cn, err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return fmt.Errorf("cannot encode the %s key: %w", cn, err)
		}
		if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
		return writePEM(keyPath, "PRIVATE KEY", kder, 0o600)
	}
	if err := leaf("localhost", x509.ExtKeyUsageServerAuth, files.Cert, files.Key, true); err != nil {
		return TLSFiles{}, err
	}
	if err := leaf("healthscore-client", x509.ExtKeyUsageClientAuth, files.ClientCert, files.ClientKey, false); err != nil {
		return TLSFiles{}, err
	}
	return files, nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

// ServerTLS loads a broker certificate and key; with clientCA set, clients
// must present a certificate signed by it (mutual TLS).
func ServerTLS(certFile, keyFile, clientCA string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("cannot load the broker certificate %s and key %s: %w", certFile, keyFile, err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if clientCA != "" {
		b, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, fmt.Errorf("cannot read the client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("client CA %s holds no PEM certificate", clientCA)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}
