package derive

import (
	"testing"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/convstate"
	"github.com/chatwebhooks/chatwebhooks/internal/shape"
)

// The benchmarks below measure one stage each on a typical chat exchange:
// the OpenAI chat completion the integration tests send (a system prompt,
// one earlier turn, the new question), answered as JSON or as an SSE
// stream. They only run with -bench; fixtures are built inside them.

const benchRequest = `{"model":"gpt-test","stream":false,"user":"visitor-7","messages":[{"role":"system","content":"You are a helpful shop assistant."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello! How can I help?"},{"role":"user","content":"When does my order ship?"}]}`

const benchAnswer = `{"id":"chatcmpl-42","object":"chat.completion","created":1730000000,"model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"Your order ships tomorrow."},"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":6,"total_tokens":37}}`

const benchStream = "data: {\"id\":\"chatcmpl-43\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-test\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" +
	"data: {\"id\":\"chatcmpl-43\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-test\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Your order \"}}]}\n\n" +
	"data: {\"id\":\"chatcmpl-43\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-test\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ships \"}}]}\n\n" +
	"data: {\"id\":\"chatcmpl-43\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-test\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tomorrow.\"},\"finish_reason\":\"stop\"}]}\n\n" +
	"data: [DONE]\n\n"

// benchExchange returns the typical exchange of the benchmarks, answered
// as JSON or streamed.
func benchExchange(stream bool) *capture.Exchange {
	ex := &capture.Exchange{
		Method: "POST", Host: "chat.example.com", Path: "/v1/chat/completions",
		RequestHeader: jsonHeader(), RequestBody: []byte(benchRequest),
		Status: 200, ResponseHeader: jsonHeader(), ResponseBody: []byte(benchAnswer),
		Start: time.Unix(1730000000, 0), End: time.Unix(1730000000, 250e6),
	}
	if stream {
		ex.ResponseHeader, ex.ResponseBody = sseHeader(), []byte(benchStream)
	}
	return ex
}

// benchDeriver is the deriver the Caddy handler builds for "source openai"
// with agent_id and agent_name, with the default conversation memory.
func benchDeriver(b *testing.B) *Deriver {
	d, err := New(Config{
		Presets: []string{"openai"},
		Defaults: []Field{
			{To: "agent.id", From: []string{"=agent_1"}},
			{To: "agent.name", From: []string{"=Support Bot"}},
		},
		State: convstate.NewMemory(0, 24*time.Hour),
	})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func BenchmarkDerive(b *testing.B) {
	for _, tc := range []struct {
		name   string
		stream bool
	}{{"openai_json", false}, {"openai_sse", true}} {
		b.Run(tc.name, func(b *testing.B) {
			d := benchDeriver(b)
			ex := benchExchange(tc.stream)
			b.SetBytes(int64(len(ex.RequestBody) + len(ex.ResponseBody)))
			b.ReportAllocs()
			for b.Loop() {
				if out := d.Derive(ex); len(out.Events) != 1 {
					b.Fatalf("%d events, problems %v", len(out.Events), out.Problems)
				}
			}
		})
	}
}

func BenchmarkWants(b *testing.B) {
	d := benchDeriver(b)
	h := jsonHeader()
	b.ReportAllocs()
	for b.Loop() {
		if !d.Wants("POST", "/v1/chat/completions", h) {
			b.Fatal("not wanted")
		}
	}
}

func BenchmarkShape(b *testing.B) {
	ev := benchDeriver(b).Derive(benchExchange(false)).Events[0]
	for _, schema := range []string{"chatvolt", "chatzuri", "standard"} {
		b.Run(schema, func(b *testing.B) {
			s, err := shape.New(shape.Config{Schema: schema})
			if err != nil {
				b.Fatal(err)
			}
			if len(s.Shape(&ev)) != 1 {
				b.Fatalf("%s: want one payload", schema)
			}
			b.ReportAllocs()
			for b.Loop() {
				s.Shape(&ev)
			}
		})
	}
}

// BenchmarkDeriveShape is one exchange turned into the payloads of the two
// webhooks of the load harness (chatvolt and chatzuri). Signing is measured
// with it in caddymodule's BenchmarkDeriveShapeSign.
func BenchmarkDeriveShape(b *testing.B) {
	d := benchDeriver(b)
	var shapers []*shape.Shaper
	for _, schema := range []string{"chatvolt", "chatzuri"} {
		s, err := shape.New(shape.Config{Schema: schema})
		if err != nil {
			b.Fatal(err)
		}
		shapers = append(shapers, s)
	}
	ex := benchExchange(false)
	b.ReportAllocs()
	for b.Loop() {
		out := d.Derive(ex)
		for i := range out.Events {
			for _, s := range shapers {
				s.Shape(&out.Events[i])
			}
		}
	}
}
