package devbroker

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func TestParseUser(t *testing.T) {
	u, err := ParseUser("scram-sha-512:alice:pa:ss")
	if err != nil || u != (User{Mechanism: "SCRAM-SHA-512", Name: "alice", Password: "pa:ss"}) {
		t.Fatalf("ParseUser = %+v, %v", u, err)
	}
	if s := u.String(); strings.Contains(s, "pa:ss") {
		t.Errorf("User.String shows the password: %q", s)
	}
	for _, bad := range []string{"", "PLAIN:alice", "PLAIN::pw", "GSSAPI:alice:s3cret-pw"} {
		if _, err := ParseUser(bad); err == nil || strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("ParseUser(%q): %v, want an error without the password", bad, err)
		}
	}
}

func TestParseACL(t *testing.T) {
	for spec, want := range map[string]ACL{
		"svc:topic:customer-events:read,describe":    {User: "svc", Resource: kmsg.ACLResourceTypeTopic, Name: "customer-events", Operations: []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationDescribe}},
		"svc:group:healthscore:read":                 {User: "svc", Resource: kmsg.ACLResourceTypeGroup, Name: "healthscore", Operations: []kmsg.ACLOperation{kmsg.ACLOperationRead}},
		"svc:topic:customer-health*:write":           {User: "svc", Resource: kmsg.ACLResourceTypeTopic, Name: "customer-health", Prefixed: true, Operations: []kmsg.ACLOperation{kmsg.ACLOperationWrite}},
		"svc:cluster:kafka-cluster:idempotent_write": {User: "svc", Resource: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Operations: []kmsg.ACLOperation{kmsg.ACLOperationIdempotentWrite}},
		"svc:topic:*:write:deny":                     {User: "svc", Resource: kmsg.ACLResourceTypeTopic, Name: "*", Operations: []kmsg.ACLOperation{kmsg.ACLOperationWrite}, Deny: true},
	} {
		got, err := ParseACL(spec)
		if err != nil || got.String() != want.String() || got.Prefixed != want.Prefixed || got.Deny != want.Deny {
			t.Errorf("ParseACL(%q) = %v, %v; want %v", spec, got, err, want)
		}
		if again, err := ParseACL(got.String()); err != nil || again.String() != got.String() {
			t.Errorf("ParseACL(%q.String()) = %v, %v", spec, again, err)
		}
	}
	for _, bad := range []string{"svc:topic:t", "svc:queue:t:read", "svc:topic:t:fly", "svc:cluster:other:alter", ":topic:t:read"} {
		if _, err := ParseACL(bad); err == nil {
			t.Errorf("ParseACL(%q): no error", bad)
		}
	}
}

func TestSecurityConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{ACLs: []ACL{{User: "a", Resource: kmsg.ACLResourceTypeTopic, Name: "t", Operations: []kmsg.ACLOperation{kmsg.ACLOperationRead}}}}, "EnableACLs is false"},
		{Config{EnableACLs: true, ACLs: []ACL{{User: "bob", Resource: kmsg.ACLResourceTypeTopic, Name: "t", Operations: []kmsg.ACLOperation{kmsg.ACLOperationRead}}}}, "ACLs for bob, not SASL users"},
		{Config{Users: []User{{Mechanism: "PLAIN", Name: "a", Password: "p"}, {Mechanism: "PLAIN", Name: "a", Password: "q"}}}, "given twice"},
		{Config{Users: []User{{Mechanism: "OAUTHBEARER", Name: "a", Password: "p"}}}, "not one of"},
	} {
		if _, err := Start(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v): %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}

// TestSASLHandshakeV0Advertised: with SASL on, the broker says it serves
// SaslHandshake from version 0, which librdkafka requires (see
// handshake.go); kcat logging in is tested in e2e.
func TestSASLHandshakeV0Advertised(t *testing.T) {
	b, err := Start(Config{Partitions: 1, Topics: []string{"t"}, Users: []User{{Mechanism: "SCRAM-SHA-256", Name: "u", Password: "p"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// As librdkafka does: ApiVersions first on a new connection.
	conn, err := net.DialTimeout("tcp", b.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version, req.ClientSoftwareName, req.ClientSoftwareVersion = 3, "test", "1"
	if _, err := conn.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")).AppendRequest(nil, req, 1)); err != nil {
		t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 3
	if err := resp.ReadFrom(buf[4:]); err != nil { // after the correlation ID
		t.Fatal(err)
	}
	found := false
	for _, k := range resp.ApiKeys {
		if k.ApiKey == int16(kmsg.SASLHandshake) {
			found = true
			if k.MinVersion != 0 || k.MaxVersion < 1 {
				t.Errorf("SaslHandshake versions %d-%d, want 0-1", k.MinVersion, k.MaxVersion)
			}
		}
	}
	if !found {
		t.Fatal("no SaslHandshake in the ApiVersions response")
	}
	frame := []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0}
	advertiseHandshakeV0(frame) // too short to be an answer: left alone, no panic
}

// TestACLs: a user may do what its ACLs allow and nothing else; a superuser
// anything.
func TestACLs(t *testing.T) {
	read, err := ParseACL("reader:topic:t:read")
	if err != nil {
		t.Fatal(err)
	}
	write, err := ParseACL("writer:topic:t:write")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Start(Config{Partitions: 1, Topics: []string{"t"}, EnableACLs: true, ACLs: []ACL{read, write},
		Users: []User{{Mechanism: "SCRAM-SHA-512", Name: "reader", Password: "r"}, {Mechanism: "SCRAM-SHA-256", Name: "writer", Password: "w"}, {Mechanism: "PLAIN", Name: "root", Password: "x", Super: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	produce := func(opts ...kgo.Opt) error {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr), kgo.DefaultProduceTopic("t"), kgo.RecordDeliveryTimeout(5 * time.Second)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr()
	}
	// franz-go's idempotent producer first asks for a producer ID, which
	// needs IdempotentWrite on the cluster or Write on some topic.
	if err := produce(kgo.SASL(scram.Auth{User: "reader", Pass: "r"}.AsSha512Mechanism())); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("produce with read only: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
	if err := produce(kgo.SASL(scram.Auth{User: "writer", Pass: "w"}.AsSha256Mechanism())); err != nil {
		t.Errorf("produce with write on the topic: %v", err)
	}
	if err := produce(kgo.SASL(scram.Auth{User: "writer", Pass: "w"}.AsSha256Mechanism()), kgo.DefaultProduceTopic("other")); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("produce to a topic without write: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if err := produce(kgo.SASL(plainAuth("root", "x"))); err != nil {
		t.Errorf("produce as the superuser: %v", err)
	}
}

func plainAuth(user, pass string) sasl.Mechanism {
	return plain.Auth{User: user, Pass: pass}.AsMechanism()
}
