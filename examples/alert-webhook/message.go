package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The alert types healthscore publishes on its alert topic (docs/events.md).
const (
	typeLow       = "health.low"
	typeRecovered = "health.recovered"
	typeDropped   = "health.dropped"
)

// Alert is a healthscore alert: a structured-mode CloudEvent whose data is
// described in docs/events.md. Only the fields the message shows are read.
type Alert struct {
	SpecVersion string    `json:"specversion"`
	Type        string    `json:"type"`
	Source      string    `json:"source"`
	ID          string    `json:"id"`
	Data        AlertData `json:"data"`
}

// AlertData is the data of an alert.
type AlertData struct {
	CustomerID    string   `json:"customer_id"`
	Score         float64  `json:"score"`
	PreviousScore *float64 `json:"previous_score"` // null on a first score
	Band          string   `json:"band"`
	PreviousBand  *string  `json:"previous_band"` // null on a first score
	Segment       string   `json:"segment"`       // "" is the base model
	Model         *struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"model"`
	EventTime string `json:"event_time"`
	Cause     struct {
		EventID     string `json:"event_id"`
		Topic       string `json:"topic"`
		Partition   int32  `json:"partition"`
		Offset      int64  `json:"offset"`
		Decay       bool   `json:"decay"`
		ModelReload bool   `json:"model_reload"`
		At          string `json:"at"`
	} `json:"cause"`
	Overridden *struct {
		Value     float64 `json:"value"`
		By        string  `json:"by"`
		Reason    string  `json:"reason"`
		ExpiresAt *string `json:"expires_at"` // null: no expiry
	} `json:"overridden"` // only while a manual override is in force
	Baseline *float64 `json:"baseline"` // health.dropped only
	Drop     *float64 `json:"drop"`     // health.dropped only
	Drivers  []struct {
		Category string  `json:"category"`
		Signal   string  `json:"signal"`
		Points   float64 `json:"points"`
	} `json:"drivers"`
}

// errNotAlert marks a record that is not a healthscore alert (for example a
// health.score_changed, when the score and alert topics are one topic).
var errNotAlert = errors.New("not a healthscore alert")

// decodeAlert parses a record value. It fails with errNotAlert for a valid
// CloudEvent of another type, and with a parse error for anything else.
func decodeAlert(value []byte) (*Alert, error) {
	var a Alert
	if err := json.Unmarshal(value, &a); err != nil {
		return nil, fmt.Errorf("cannot parse alert: %w", err)
	}
	if a.SpecVersion != "1.0" || a.ID == "" || a.Type == "" {
		return nil, errors.New("cannot parse alert: not a CloudEvent (specversion 1.0, id and type are required)")
	}
	switch a.Type {
	case typeLow, typeRecovered, typeDropped:
	default:
		return nil, fmt.Errorf("%w: type %q", errNotAlert, a.Type)
	}
	if a.Data.CustomerID == "" {
		return nil, fmt.Errorf("cannot parse %s alert %s: data.customer_id is missing", a.Type, a.ID)
	}
	return &a, nil
}

// dedupKey identifies an alert: CloudEvents ids are unique per source.
func (a *Alert) dedupKey() string { return a.Source + "\x00" + a.ID }

// slackMessage is the body of a Slack-compatible incoming webhook.
type slackMessage struct {
	Text string `json:"text"`
}

// render returns the webhook body for a: one message in Slack's mrkdwn, for
// example
//
//	:red_circle: *globex* entered red: score *10* (first score)
//	Segment: base · model b2b-saas 2026.11.1
//	Top drivers:
//	• support / tickets: +10
//	health.low · 2026-11-20 10:15:30 UTC · cause: customer-events/0@1202 · id 85a4b795ef984a4ec4adc8512f9b6ea5
func render(a *Alert) []byte {
	d := &a.Data
	var b strings.Builder
	customer := "*" + esc(d.CustomerID) + "*"
	score := "score *" + num(d.Score) + "*"
	switch a.Type {
	case typeLow:
		fmt.Fprintf(&b, ":red_circle: %s entered red: %s%s", customer, score, was(d))
	case typeRecovered:
		fmt.Fprintf(&b, ":large_green_circle: %s recovered: %s, band %s%s", customer, score, esc(d.Band), was(d))
	case typeDropped:
		drop, baseline := "?", "?"
		if d.Drop != nil {
			drop = num(*d.Drop)
		}
		if d.Baseline != nil {
			baseline = num(*d.Baseline)
		}
		fmt.Fprintf(&b, ":chart_with_downwards_trend: %s dropped %s points below its baseline %s: %s, band %s%s",
			customer, drop, baseline, score, esc(d.Band), was(d))
	}
	segment := d.Segment
	if segment == "" {
		segment = "base"
	}
	fmt.Fprintf(&b, "\nSegment: %s", esc(segment))
	if d.Model != nil {
		fmt.Fprintf(&b, " · model %s %s", esc(d.Model.Name), esc(d.Model.Version))
	}
	if o := d.Overridden; o != nil {
		fmt.Fprintf(&b, "\n:warning: manual override in force: %s", num(o.Value))
		if o.By != "" {
			fmt.Fprintf(&b, " by %s", esc(o.By))
		}
		if o.Reason != "" {
			fmt.Fprintf(&b, " (%s)", esc(o.Reason))
		}
		if o.ExpiresAt != nil {
			fmt.Fprintf(&b, " until %s", when(*o.ExpiresAt))
		}
	}
	if len(d.Drivers) > 0 {
		b.WriteString("\nTop drivers:")
		for _, dr := range d.Drivers {
			sign := ""
			if dr.Points > 0 {
				sign = "+"
			}
			fmt.Fprintf(&b, "\n• %s / %s: %s%s", esc(dr.Category), esc(dr.Signal), sign, num(dr.Points))
		}
	}
	fmt.Fprintf(&b, "\n%s · %s · cause: %s · id %s", a.Type, when(d.EventTime), cause(d), esc(a.ID))
	body, _ := json.Marshal(slackMessage{Text: b.String()}) // one string: cannot fail
	return body
}

// was describes the previous score and band, if any.
func was(d *AlertData) string {
	if d.PreviousScore == nil || d.PreviousBand == nil {
		return " (first score)"
	}
	return " (was " + num(*d.PreviousScore) + ", " + esc(*d.PreviousBand) + ")"
}

func cause(d *AlertData) string {
	c := &d.Cause
	switch {
	case c.Decay: // at the event time
		return "no new events (the score decayed)"
	case c.ModelReload:
		return "a model reload"
	}
	s := esc(c.Topic) + "/" + strconv.Itoa(int(c.Partition)) + "@" + strconv.FormatInt(c.Offset, 10)
	if c.EventID != "" {
		s = "event " + esc(c.EventID) + " (" + s + ")"
	}
	return s
}

// when formats an RFC 3339 instant for people, to the second in UTC.
func when(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return esc(s)
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// num formats a published number (already rounded to 2 decimals).
func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// esc escapes the three characters Slack's mrkdwn reserves.
var esc = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace
