package delivery

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestDeliveredMessageKeepsItsAttempts follows one message through two
// failures and a success: afterwards it is found by id as delivered, with
// each attempt's status, class and the start of each answer, and the
// headers sent with secrets masked, in both stores and across a reopen.
func TestDeliveredMessageKeepsItsAttempts(t *testing.T) {
	long := strings.Repeat("x", 3000)
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			rx := newReceiver(t, answers(
				response{status: 500, body: `{"error":"database down"}`},
				response{status: 503, body: long},
				response{status: 200, body: `{"ok":true}`}))
			store, reopen := kind.open(t)
			h := newHarness(t, store, Options{})
			h.set(endpoint(rx.URL, func(e *Endpoint) {
				e.Header = http.Header{"Authorization": {"Bearer crm-token"}}
			}))
			m := msg("A", 1)
			m.Conversation = "conv-7"
			h.enqueue(m)
			h.waitCount("failed:rx", 1)
			h.clock.advanceToTimer(t)
			h.waitCount("failed:rx", 2)
			h.clock.advanceToTimer(t)
			h.waitCount("delivered:rx", 1)
			if kind.name == "bolt" {
				h.eng.Close() // commits the delivered record
				h.start(reopen(), Options{})
			}

			recs, err := h.eng.Message(m.ID)
			if err != nil || len(recs) != 1 {
				t.Fatalf("Message(%s) = %d records, %v; want 1", m.ID, len(recs), err)
			}
			r := recs[0]
			if r.State() != StateDelivered || r.Conversation != "conv-7" || string(r.Body) != string(m.Body) {
				t.Fatalf("record %+v: want delivered, conversation conv-7, the body", r)
			}
			type seen struct {
				Status   int
				Class    string
				Response string
			}
			var got []seen
			for _, a := range r.History {
				if a.At.IsZero() || a.Duration <= 0 {
					t.Errorf("attempt %+v without its time and duration", a)
				}
				got = append(got, seen{a.Status, a.Class, a.Response})
			}
			want := []seen{
				{500, ReasonStatus, `{"error":"database down"}`},
				{503, ReasonStatus, long[:maxResponseKept]},
				{200, "", `{"ok":true}`},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("attempts\n got %+v\nwant %+v", got, want)
			}
			for k, v := range map[string]string{"Authorization": masked, "X-Test-Signature": masked,
				"X-Test-Id": masked, "Content-Type": "application/json"} {
				if g := r.SentHeader.Get(k); g != v {
					t.Errorf("sent header %s = %q, want %q", k, g, v)
				}
			}
			if s, _ := h.eng.Stats(); s.Queued != 0 {
				t.Errorf("%d queued after the reopen, want 0", s.Queued)
			}
		})
	}
}

// TestHistoryKeepsTheLastAttempts checks that a message failing more often
// than maxHistory keeps its latest attempts.
func TestHistoryKeepsTheLastAttempts(t *testing.T) {
	var r Record
	for n := range maxHistory + 3 {
		r.addAttempt(Attempt{Status: 500 + n})
	}
	if len(r.History) != maxHistory || r.History[0].Status != 503 || r.History[maxHistory-1].Status != 512 {
		t.Fatalf("history %+v, want attempts 503..512", r.History)
	}
}

// TestDeliveredRetentionBounds delivers records into a store and checks
// that each bound of the retention trims the oldest.
func TestDeliveredRetentionBounds(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	size := recordSize(&Record{Message: Message{ID: "m00", Endpoint: "e", Lane: "L", Body: []byte(`{"id":"m00"}`),
		Created: time.Unix(1700000000, 0)}, Seq: 1, DeliveredAt: at})
	tests := []struct {
		name string
		keep Retention
		want []string // newest first
	}{
		{"count", Retention{Age: time.Hour, Count: 3, Bytes: 1 << 20}, []string{"m09", "m08", "m07"}},
		{"bytes", Retention{Age: time.Hour, Count: 100, Bytes: 4*size + size/2}, []string{"m09", "m08", "m07", "m06"}},
		{"age", Retention{Age: 2*time.Minute + time.Second, Count: 100, Bytes: 1 << 20}, []string{"m09", "m08", "m07"}},
		{"off", Retention{Age: -1}, []string{}},
	}
	for _, tt := range tests {
		for _, kind := range storeKinds {
			t.Run(tt.name+"/"+kind.name, func(t *testing.T) {
				s, reopen := kind.open(t)
				for n := range 10 {
					r := rec("e", fmt.Sprintf("m%02d", n))
					if err := s.Add([]*Record{r}); err != nil {
						t.Fatal(err)
					}
					r.DeliveredAt = at.Add(time.Duration(n) * time.Minute)
					ch := make(chan error, 1)
					s.Deliver(r, tt.keep, func(err error) { ch <- err })
					if err := <-ch; err != nil {
						t.Fatal(err)
					}
				}
				s = reopen()
				var got []string
				if err := s.Scan(StateDelivered, "", func(r *Record) bool { got = append(got, r.ID); return true }); err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("kept %v, want %v", got, tt.want)
				}
				var pending []string
				s.Scan(StateQueued, "", func(r *Record) bool { pending = append(pending, r.ID); return true })
				if len(pending) != 0 {
					t.Errorf("still pending: %v", pending)
				}
			})
		}
	}
}

// TestMessagesQuery checks the selection and paging of Engine.Messages
// over queued, delivered and dead records.
func TestMessagesQuery(t *testing.T) {
	rx := newReceiver(t, func(_ int, h hit) response {
		if h.N%3 == 0 {
			return response{status: 410}
		}
		return response{status: 200}
	})
	h := newHarness(t, NewMemoryStore(), Options{})
	h.set(endpoint(rx.URL, func(e *Endpoint) { e.Ordered = false }))
	var msgs []Message
	for n := 1; n <= 9; n++ {
		m := msg("A", n)
		m.Conversation = fmt.Sprintf("c%d", n%2)
		msgs = append(msgs, m)
	}
	h.enqueue(msgs...)
	h.waitCount("delivered:rx", 6)
	h.waitCount("dead:rx", 3)

	page := func(q Query) []string {
		t.Helper()
		recs, err := h.eng.Messages(q)
		if err != nil {
			t.Fatal(err)
		}
		return ids(recs)
	}
	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"delivered newest first", Query{State: StateDelivered}, []string{"msg_A8", "msg_A7", "msg_A5", "msg_A4", "msg_A2", "msg_A1"}},
		{"dead", Query{State: StateDead, Endpoint: "rx"}, []string{"msg_A9", "msg_A6", "msg_A3"}},
		{"conversation", Query{State: StateDelivered, Conversation: "c1"}, []string{"msg_A7", "msg_A5", "msg_A1"}},
		{"limit", Query{State: StateDelivered, Limit: 2}, []string{"msg_A8", "msg_A7"}},
		{"before", Query{State: StateDelivered, Before: 5, Limit: 2}, []string{"msg_A4", "msg_A2"}},
		{"other endpoint", Query{State: StateDelivered, Endpoint: "other"}, []string{}},
		{"queued", Query{State: StateQueued}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := page(tt.q); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := h.eng.Message("msg_A404"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v, want ErrNotFound", err)
	}
	s, _ := h.eng.Stats()
	if e := s.Endpoints["rx"]; e.Delivered != 6 || e.Failed != 3 || e.LastSuccess == nil || e.LastFailure == nil ||
		e.LastError != "HTTP 410 Gone: the receiver asks not to retry" {
		t.Errorf("stats %+v: want 6 delivered, 3 failed, both times, the 410", e)
	}
}

// TestCodecKeepsHistoryAndReadsVersion2 round-trips every field version 3
// added, and reads a record written before them.
func TestCodecKeepsHistoryAndReadsVersion2(t *testing.T) {
	r := rec("e", "a")
	r.Seq, r.Attempts, r.LastStatus = 3, 2, 200
	r.Conversation, r.Traceparent, r.Tracestate = "conv", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "k=v"
	r.DeliveredAt = time.Unix(9, 10)
	r.SentHeader = http.Header{"Webhook-Id": {"a"}, "Authorization": {masked}}
	r.History = []Attempt{{At: time.Unix(7, 8), Duration: time.Second, Status: 500, Class: ReasonStatus, Error: "HTTP 500", Response: "down"},
		{At: time.Unix(8, 9), Duration: time.Millisecond, Status: 200}}
	enc := encodeRecord(r)
	got, err := decodeRecord(enc)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip %+v, %v\nwant %+v", got, err, r)
	}
	for n := 1; n < len(enc); n++ {
		if _, err := decodeRecord(enc[:n]); err == nil {
			t.Errorf("decoded %d of %d bytes", n, len(enc))
		}
	}
	if at, err := deliveredAt(enc); err != nil || !at.Equal(r.DeliveredAt) {
		t.Errorf("deliveredAt read %v, %v; want %v", at, err, r.DeliveredAt)
	}

	// Version 2 ended with the body: the same bytes without what version
	// 3 appended (three empty strings, a zero time and two empty lists).
	old := rec("e", "b")
	v3 := encodeRecord(old)
	v2 := append([]byte{2}, v3[1:len(v3)-6]...)
	got, err = decodeRecord(v2)
	if err != nil || !reflect.DeepEqual(got, old) {
		t.Fatalf("version 2 record read as %+v, %v\nwant %+v", got, err, old)
	}
	if at, err := deliveredAt(v2); err != nil || !at.IsZero() {
		t.Errorf("deliveredAt of a version 2 record: %v, %v; want none", at, err)
	}
}
