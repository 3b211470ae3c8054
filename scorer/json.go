package scorer

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// decoder is a small strict JSON reader for the flat event object. It exists
// because the event decoder is the hottest code in the service: it avoids
// reflection and copies strings only once. It implements the RFC 8259 grammar
// (checked against encoding/json by FuzzDecodeEventDifferential) and caps
// nesting depth so hostile input cannot exhaust the stack.
type decoder struct {
	data []byte
	pos  int
}

const maxDepth = 64

func (d *decoder) syntax(what string) error {
	return badField(ReasonInvalidJSON, "", "%s at byte %d", what, d.pos)
}

func (d *decoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// object reads a top-level object, calling field for every key with the
// reader positioned at the value; field must consume the value.
func (d *decoder) object(field func(key []byte) error) error {
	d.ws()
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		return d.syntax("want a JSON object")
	}
	d.pos++
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return d.end()
	}
	for {
		d.ws()
		key, err := d.str()
		if err != nil {
			return err
		}
		d.ws()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return d.syntax("want ':' after object key")
		}
		d.pos++
		d.ws()
		if err := field(key); err != nil {
			return err
		}
		d.ws()
		if d.pos >= len(d.data) {
			return d.syntax("unexpected end of input in object")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return d.end()
		default:
			return d.syntax("want ',' or '}' in object")
		}
	}
}

func (d *decoder) end() error {
	d.ws()
	if d.pos != len(d.data) {
		return d.syntax("unexpected data after the JSON object")
	}
	return nil
}

func (d *decoder) isNull() bool {
	if len(d.data)-d.pos >= 4 && string(d.data[d.pos:d.pos+4]) == "null" {
		d.pos += 4
		return true
	}
	return false
}

// optString reads a string or null (ok=false).
func (d *decoder) optString(field string) (string, bool, error) {
	if d.isNull() {
		return "", false, nil
	}
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		if err := d.skipValue(); err != nil {
			return "", false, err
		}
		return "", false, badField(ReasonInvalidField, field, "must be a string")
	}
	b, err := d.str()
	if err != nil {
		return "", false, err
	}
	return string(b), true, nil
}

// optNumber reads a number or null (ok=false).
func (d *decoder) optNumber(field string) (float64, bool, error) {
	if d.isNull() {
		return 0, false, nil
	}
	start := d.pos
	if err := d.number(); err != nil {
		d.pos = start
		if err := d.skipValue(); err != nil {
			return 0, false, err
		}
		return 0, false, badField(ReasonInvalidValue, field, "must be a number")
	}
	v, err := strconv.ParseFloat(string(d.data[start:d.pos]), 64)
	if err != nil {
		return 0, false, badField(ReasonInvalidValue, field, "%s is out of range", d.data[start:d.pos])
	}
	return v, true, nil
}

// optObject validates and skips an object or null.
func (d *decoder) optObject(field string) error {
	if d.isNull() {
		return nil
	}
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		if err := d.skipValue(); err != nil {
			return err
		}
		return badField(ReasonInvalidField, field, "must be an object")
	}
	return d.skipValue()
}

// rawValue validates and skips any value, keeping its bytes in *raw.
func (d *decoder) rawValue(raw *[]byte) error {
	start := d.pos
	if err := d.skipValue(); err != nil {
		return err
	}
	*raw = d.data[start:d.pos]
	return nil
}

// attributes validates and skips an object or null, like optObject, keeping
// the raw value of its last "by" key in *by.
func (d *decoder) attributes(by *[]byte) error {
	if d.isNull() {
		return nil
	}
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		return d.optObject("attributes")
	}
	d.pos++
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return nil
	}
	for {
		d.ws()
		key, err := d.str()
		if err != nil {
			return err
		}
		d.ws()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return d.syntax("want ':' after object key")
		}
		d.pos++
		d.ws()
		start := d.pos
		if err := d.skip(1); err != nil {
			return err
		}
		if string(key) == "by" {
			*by = d.data[start:d.pos]
		}
		d.ws()
		if d.pos >= len(d.data) {
			return d.syntax("unexpected end of input")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return nil
		default:
			return d.syntax("want ',' or a closing bracket")
		}
	}
}

// str reads a string and returns its unescaped bytes. Without escapes the
// result aliases the input.
func (d *decoder) str() ([]byte, error) {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return nil, d.syntax("want a string")
	}
	d.pos++
	start := d.pos
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			s := d.data[start:d.pos]
			d.pos++
			return s, nil
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return nil, d.syntax("control character in string")
		}
		d.pos++
	}
	return nil, d.syntax("unterminated string")
}

// escaped finishes a string that has escapes, copying it.
func (d *decoder) escaped(start int) ([]byte, error) {
	out := append([]byte(nil), d.data[start:d.pos]...)
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			return out, nil
		case c < 0x20:
			return nil, d.syntax("control character in string")
		case c != '\\':
			out = append(out, c)
			d.pos++
			continue
		}
		d.pos++
		if d.pos >= len(d.data) {
			break
		}
		e := d.data[d.pos]
		d.pos++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return nil, d.syntax("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(d.data)-d.pos >= 2 && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
					d.pos += 2
					if r2, ok = d.hex4(); !ok {
						return nil, d.syntax("bad \\u escape")
					}
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return nil, badField(ReasonInvalidUTF8, "", "string has an unpaired UTF-16 surrogate escape")
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, d.syntax("bad escape in string")
		}
	}
	return nil, d.syntax("unterminated string")
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.data)-d.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.data[d.pos : d.pos+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	d.pos += 4
	return r, true
}

// number checks the JSON number grammar at pos and advances past it.
func (d *decoder) number() error {
	p, n := d.pos, len(d.data)
	if p < n && d.data[p] == '-' {
		p++
	}
	switch {
	case p < n && d.data[p] == '0':
		p++
	case p < n && '1' <= d.data[p] && d.data[p] <= '9':
		for p < n && '0' <= d.data[p] && d.data[p] <= '9' {
			p++
		}
	default:
		return d.syntax("bad number")
	}
	if p < n && d.data[p] == '.' {
		p++
		if p >= n || d.data[p] < '0' || d.data[p] > '9' {
			return d.syntax("bad number")
		}
		for p < n && '0' <= d.data[p] && d.data[p] <= '9' {
			p++
		}
	}
	if p < n && (d.data[p] == 'e' || d.data[p] == 'E') {
		p++
		if p < n && (d.data[p] == '+' || d.data[p] == '-') {
			p++
		}
		if p >= n || d.data[p] < '0' || d.data[p] > '9' {
			return d.syntax("bad number")
		}
		for p < n && '0' <= d.data[p] && d.data[p] <= '9' {
			p++
		}
	}
	d.pos = p
	return nil
}

// skipValue validates and skips any JSON value.
func (d *decoder) skipValue() error { return d.skip(0) }

func (d *decoder) skip(depth int) error {
	if depth > maxDepth {
		return d.syntax("nesting too deep")
	}
	d.ws()
	if d.pos >= len(d.data) {
		return d.syntax("unexpected end of input")
	}
	switch c := d.data[d.pos]; {
	case c == '"':
		_, err := d.str()
		return err
	case c == '{' || c == '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		d.pos++
		d.ws()
		if d.pos < len(d.data) && d.data[d.pos] == closing {
			d.pos++
			return nil
		}
		for {
			d.ws()
			if c == '{' {
				if _, err := d.str(); err != nil {
					return err
				}
				d.ws()
				if d.pos >= len(d.data) || d.data[d.pos] != ':' {
					return d.syntax("want ':' after object key")
				}
				d.pos++
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			d.ws()
			if d.pos >= len(d.data) {
				return d.syntax("unexpected end of input")
			}
			switch d.data[d.pos] {
			case ',':
				d.pos++
			case closing:
				d.pos++
				return nil
			default:
				return d.syntax("want ',' or a closing bracket")
			}
		}
	case c == 't' && len(d.data)-d.pos >= 4 && string(d.data[d.pos:d.pos+4]) == "true":
		d.pos += 4
	case c == 'f' && len(d.data)-d.pos >= 5 && string(d.data[d.pos:d.pos+5]) == "false":
		d.pos += 5
	case c == 'n' && len(d.data)-d.pos >= 4 && string(d.data[d.pos:d.pos+4]) == "null":
		d.pos += 4
	case c == '-' || ('0' <= c && c <= '9'):
		return d.number()
	default:
		return d.syntax("unexpected character")
	}
	return nil
}
