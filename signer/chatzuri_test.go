package signer

import (
	"net/http"
	"testing"
	"time"
)

func TestChatzuriPrepareReserialisesLikeJSONStringify(t *testing.T) {
	s, _ := NewChatzuri("zuri-secret")
	got, err := s.Prepare([]byte("{\n  \"b\": 1.50,\n  \"a\": \"\\u003cb\\u003e\",\n  \"1\": 1E5\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"1":100000,"b":1.5,"a":"<b>"}`; string(got) != want {
		t.Errorf("Prepare = %s, want %s", got, want)
	}
	if _, err := s.Prepare([]byte("not json")); err == nil {
		t.Error("Prepare(not json): no error")
	}
}

func TestChatzuriVerifyChecksTheReserialisedBodyAsItsReceiverDoes(t *testing.T) {
	s, _ := NewChatzuri("zuri-secret")
	compact := []byte(`{"eventType":"message.received","payload":{"message":"hi"}}`)
	h := signed(t, s, "", time.Now(), compact)
	pretty := []byte("{ \"eventType\": \"message.received\",\n  \"payload\": { \"message\": \"\\u0068i\" } }")
	if err := s.Verify(pretty, h); err != nil {
		t.Errorf("Verify of the same JSON, reformatted: %v", err)
	}
	if err := s.Verify([]byte("{"), h); err == nil {
		t.Error("Verify of invalid JSON: no error")
	}
	if err := s.Verify(compact, http.Header{"X-Chatzuri-Signature": {"8eedd9676da30cc54e9c704146c0aab2fe04bee8"}}); err == nil {
		t.Error("Verify with another body's signature: no error")
	}
}
