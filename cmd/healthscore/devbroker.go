package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/healthscore/healthscore/internal/devbroker"
)

func devBrokerCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev-broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 9092, "port on 127.0.0.1 (0 picks a free one)")
	partitions := fs.Int("partitions", 8, "partitions per topic")
	topics := fs.String("topics", "customer-events,customer-health,customer-health-alerts,customer-events-dlq", "topics to create, comma separated")
	control := fs.String("control", "", "serve the fault-injection API on this loopback `ADDR` (e.g. 127.0.0.1:9099; port 0 picks one): POST /faults, POST /outage?seconds=N")
	maxSession := fs.Duration("max-session-timeout", 0, "lower the session timeout consumers ask for to at most this, and their rebalance timeout to twice this (e.g. 6s), so killed consumers leave their group sooner; 0 keeps theirs")
	tlsCert := fs.String("tls-cert", "", "serve TLS only, with this PEM certificate `file` (with --tls-key)")
	tlsKey := fs.String("tls-key", "", "PEM `file` of the key of --tls-cert")
	tlsGen := fs.String("tls-generate", "", "serve TLS only, with a throw-away CA and certificates for 127.0.0.1/localhost generated into `DIR` (ca.pem, broker.pem, broker-key.pem, client.pem, client-key.pem)")
	tlsClientCA := fs.String("tls-client-ca", "", "require client certificates signed by the CA in this PEM `file` (mutual TLS; with --tls-generate: DIR/ca.pem signs DIR/client.pem)")
	var users, supers, acls specList
	fs.Var(&users, "sasl-user", "require SASL and add a user `MECH:NAME:PASSWORD` (MECH: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512); repeatable")
	fs.Var(&supers, "sasl-superuser", "like --sasl-user, for a user that bypasses ACLs (`MECH:NAME:PASSWORD`); repeatable")
	usersFile := fs.String("sasl-users-file", "", "`file` of SASL users, one MECH:NAME:PASSWORD a line ('superuser MECH:NAME:PASSWORD' for a superuser; # comments)")
	fs.Var(&acls, "acl", "turn ACLs on and allow `USER:RESOURCE:NAME:OPS` (RESOURCE: topic, group, cluster, transactional-id; NAME: a name, * for all, or a prefix ending in *; OPS: comma-separated read, write, describe, create, idempotent_write, …; append :deny to deny); repeatable")
	aclFile := fs.String("acl-file", "", "`file` of ACLs, one USER:RESOURCE:NAME:OPS a line (# comments); turns ACLs on")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: healthscore dev-broker [--port P] [--partitions N] [--topics T,...] [--control ADDR]
                             [--tls-generate DIR | --tls-cert F --tls-key F] [--tls-client-ca F]
                             [--sasl-user MECH:NAME:PASSWORD]... [--acl USER:RESOURCE:NAME:OPS]...

Runs an in-memory Kafka-compatible broker (franz-go's kfake) on 127.0.0.1 with the
topics created, until interrupted. For development and tests only: nothing is persisted.

Security, to test clients against a broker set up like a managed Kafka:
  --tls-generate DIR     TLS listener; the CA to trust is DIR/ca.pem (printed at start)
  --sasl-user MECH:NAME:PASSWORD
                         SASL PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; every client must log in
  --acl USER:RESOURCE:NAME:OPS
                         ACLs on: users may do only what an ACL allows (superusers anything)
  e.g. healthscore dev-broker --tls-generate /tmp/kafka-tls \
         --sasl-user SCRAM-SHA-512:healthscore:s3cret \
         --acl healthscore:topic:customer-events:read --acl healthscore:group:healthscore:read \
         --acl 'healthscore:topic:customer-health*:write' --acl healthscore:topic:customer-events-dlq:write
  then: healthscore run --brokers 127.0.0.1:9092 --kafka-tls --kafka-tls-ca /tmp/kafka-tls/ca.pem \
         --kafka-sasl-mechanism SCRAM-SHA-512 --kafka-sasl-user healthscore --kafka-sasl-password-file FILE
  (see docs/production-kafka.md)

With --control, a loopback HTTP endpoint injects faults (for fault tests):
  POST /faults  {"api":"produce|fetch|offset_commit|…","error":"NOT_LEADER_FOR_PARTITION|…","count":N}
                answers the next N requests of that API with that Kafka error (-1: forever)
  POST /outage?seconds=10[&hang=1]
                every request fails (or hangs, then fails) for that long

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *partitions < 1 {
		return fmt.Errorf("--partitions must be at least 1, got %d", *partitions)
	}
	sec, notes, err := devBrokerSecurity(*tlsCert, *tlsKey, *tlsGen, *tlsClientCA, users, supers, *usersFile, acls, *aclFile)
	if err != nil {
		return err
	}
	var ln net.Listener
	if *control != "" {
		host, _, err := net.SplitHostPort(*control)
		if err != nil {
			return fmt.Errorf("--control %q: %w", *control, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("--control %q: the fault API listens on loopback only (127.0.0.1, ::1 or localhost)", *control)
		}
		if ln, err = net.Listen("tcp", *control); err != nil {
			return fmt.Errorf("cannot listen on --control %s: %w", *control, err)
		}
		defer ln.Close()
	}
	sec.Port, sec.Partitions, sec.Topics, sec.MaxSessionTimeout = *port, int32(*partitions), splitList(*topics), *maxSession
	b, err := devbroker.Start(sec)
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(stdout, "dev-broker listening on %s with topics %s (%d partitions each); Ctrl-C to stop\n", b.Addr, *topics, *partitions)
	for _, n := range notes {
		fmt.Fprintln(stdout, "dev-broker "+n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if ln != nil {
		srv := &http.Server{Handler: b.ControlHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintf(stderr, "dev-broker: control endpoint: %v\n", err)
			}
		}()
		defer srv.Close()
		fmt.Fprintf(stdout, "dev-broker control on http://%s\n", ln.Addr())
	}
	<-ctx.Done()
	return nil
}

// specList is a repeatable string flag.
type specList []string

func (l *specList) String() string     { return "" } // never echo specs: they may hold passwords
func (l *specList) Set(v string) error { *l = append(*l, v); return nil }

// devBrokerSecurity turns the security flags of dev-broker into a
// devbroker.Config and the lines to print about it (never a password).
func devBrokerSecurity(cert, key, gen, clientCA string, users, supers []string, usersFile string, acls []string, aclFile string) (devbroker.Config, []string, error) {
	var cfg devbroker.Config
	var notes []string
	switch {
	case gen != "" && (cert != "" || key != ""):
		return cfg, nil, errors.New("--tls-generate and --tls-cert/--tls-key exclude each other: give one")
	case (cert == "") != (key == ""):
		return cfg, nil, errors.New("--tls-cert and --tls-key go together")
	case clientCA != "" && gen == "" && cert == "":
		return cfg, nil, errors.New("--tls-client-ca needs a TLS listener: add --tls-generate DIR or --tls-cert and --tls-key")
	}
	if gen != "" {
		files, err := devbroker.GenerateTLS(gen, 30*24*time.Hour)
		if err != nil {
			return cfg, nil, fmt.Errorf("--tls-generate: %w", err)
		}
		cert, key = files.Cert, files.Key
		notes = append(notes, fmt.Sprintf("TLS: clients trust the CA %s (--kafka-tls --kafka-tls-ca %s); client certificate %s, key %s", files.CA, files.CA, files.ClientCert, files.ClientKey))
	}
	if cert != "" {
		tc, err := devbroker.ServerTLS(cert, key, clientCA)
		if err != nil {
			return cfg, nil, fmt.Errorf("--tls-cert: %w", err)
		}
		cfg.TLS = tc
		if gen == "" {
			notes = append(notes, "TLS: certificate "+cert)
		}
		if clientCA != "" {
			notes = append(notes, "TLS: clients must present a certificate signed by "+clientCA)
		}
	}
	type spec struct {
		s     string
		super bool
		from  string
	}
	var specs []spec
	for _, u := range users {
		specs = append(specs, spec{u, false, "--sasl-user"})
	}
	for _, u := range supers {
		specs = append(specs, spec{u, true, "--sasl-superuser"})
	}
	if usersFile != "" {
		lines, err := devbroker.ReadSpecFile(usersFile)
		if err != nil {
			return cfg, nil, fmt.Errorf("cannot read --sasl-users-file: %w", err)
		}
		for i, l := range lines {
			sp := spec{s: l, from: fmt.Sprintf("--sasl-users-file %s, entry %d", usersFile, i+1)}
			if rest, ok := strings.CutPrefix(l, "superuser "); ok {
				sp.s, sp.super = strings.TrimSpace(rest), true
			}
			specs = append(specs, sp)
		}
	}
	var names []string
	for _, sp := range specs {
		u, err := devbroker.ParseUser(sp.s)
		if err != nil {
			return cfg, nil, fmt.Errorf("%s: %w", sp.from, err)
		}
		u.Super = sp.super
		cfg.Users = append(cfg.Users, u)
		names = append(names, u.String())
	}
	if len(names) > 0 {
		notes = append(notes, "SASL users: "+strings.Join(names, ", "))
	}
	aclSpecs := append([]string(nil), acls...)
	if aclFile != "" {
		lines, err := devbroker.ReadSpecFile(aclFile)
		if err != nil {
			return cfg, nil, fmt.Errorf("cannot read --acl-file: %w", err)
		}
		aclSpecs = append(aclSpecs, lines...)
	}
	for _, s := range aclSpecs {
		a, err := devbroker.ParseACL(s)
		if err != nil {
			return cfg, nil, fmt.Errorf("--acl: %w", err)
		}
		cfg.ACLs = append(cfg.ACLs, a)
	}
	if len(aclSpecs) > 0 {
		cfg.EnableACLs = true
		notes = append(notes, fmt.Sprintf("ACLs on: %d entries; users may do only what they allow", len(cfg.ACLs)))
	}
	return cfg, notes, nil
}
