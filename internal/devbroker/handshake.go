package devbroker

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync/atomic"
)

// kfake serves SaslHandshake v1 only and says so in its ApiVersions
// response (versions 1 to 1). librdkafka (kcat, confluent-kafka-*) enables
// SASL only when the broker's range includes version 0 (as every real
// broker's does) and then sends v1 anyway. So that such clients can log in,
// the broker's listener rewrites the SaslHandshake entry of the first
// response of each connection — the ApiVersions answer, which every client
// asks for first — to read 0 to 1. Nothing else is touched: the entry has
// the same size, and a client that does send v0 is still refused by kfake.

// listener wraps accepted connections (after TLS, when configured).
type listener struct {
	net.Listener
	tls *tls.Config
}

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.tls != nil {
		c = tls.Server(c, l.tls)
	}
	return &handshakeConn{Conn: c}, nil
}

type handshakeConn struct {
	net.Conn
	written atomic.Bool
}

func (c *handshakeConn) Write(b []byte) (int, error) {
	if !c.written.Swap(true) {
		advertiseHandshakeV0(b)
	}
	return c.Conn.Write(b)
}

// advertiseHandshakeV0 sets the minimum version of SaslHandshake (key 17)
// to 0 in frame, a response frame (size, correlation ID, body), if it is an
// ApiVersions response. It tries the flexible layout (v3+: compact array,
// entries with a tag section) and the classic one (v0-v2).
func advertiseHandshakeV0(frame []byte) {
	if len(frame) < 8+2+1 || int(binary.BigEndian.Uint32(frame)) != len(frame)-4 {
		return
	}
	body := frame[8:]
	if binary.BigEndian.Uint16(body) != 0 { // error code
		return
	}
	rest := body[2:]
	// Flexible: uvarint count+1, entries of key, min, max (int16) and an
	// empty tag section (one 0 byte).
	if n, size := binary.Uvarint(rest); size > 0 && n > 1 {
		if patchEntries(rest[size:], int(n-1), 7) {
			return
		}
	}
	// Classic: int32 count, entries of key, min, max.
	if len(rest) >= 4 {
		patchEntries(rest[4:], int(binary.BigEndian.Uint32(rest)), 6)
	}
}

// patchEntries checks that b starts with n plausible entries of the given
// size and, if so, lowers SaslHandshake's minimum version 1 to 0.
func patchEntries(b []byte, n, size int) bool {
	if n <= 0 || n > 500 || len(b) < n*size {
		return false
	}
	at := -1
	for i := range n {
		e := b[i*size:]
		key, lo, hi := int16(binary.BigEndian.Uint16(e)), int16(binary.BigEndian.Uint16(e[2:])), int16(binary.BigEndian.Uint16(e[4:]))
		if key < 0 || key > 1000 || lo < 0 || hi < lo || (size == 7 && e[6] != 0) {
			return false
		}
		if key == 17 && lo == 1 {
			at = i * size
		}
	}
	if at >= 0 {
		binary.BigEndian.PutUint16(b[at+2:], 0)
	}
	return true
}
