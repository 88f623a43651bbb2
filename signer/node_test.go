package signer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/nodereceiver"
)

// These tests run Chatzuri's documented receiver (internal/nodereceiver)
// in Node with Express from the npm registry. They skip only when node or
// npm is missing. The first run installs Express into the user cache
// directory; later runs take well under a second, so -short skips them only
// while that installation is missing, as it needs the network.

// chatzuriDeliveries are payloads shaped as Chatzuri's, with content that a
// re-serialising receiver could disagree about.
var chatzuriDeliveries = []struct{ name, json string }{
	{"lead.submit", `{"eventType":"lead.submit","agentId":"agent_abc123","payload":{"conversationId":"conv_xyz","customerEmail":"zoë@example.com","customerName":"Zoë Çelik","customerPhone":"+33 6 12 34 56 78"}}`},
	{"whatsapp, pretty-printed", "{\n  \"eventType\": \"message.received\",\n  \"channel\": \"whatsapp\",\n  \"agentId\": \"agent_abc123\",\n  \"payload\": {\n    \"from\": \"+1234567890\",\n    \"message\": \"Hello, I need help with my order 📦\",\n    \"conversationId\": \"conv_xyz\"\n  }\n}\n"},
	{"telegram with numbers", `{"eventType":"message.received","channel":"telegram","agentId":"agent_abc123","payload":{"chatId":123456789,"username":"john_doe","message":"What are your opening hours?","conversationId":"conv_xyz","price":1.50,"qty":1E5,"ratio":0.1,"big":12345678901234567890,"tiny":0.0000001,"zero":-0,"exp":1e21}}`},
	{"facebook with CJK and RTL", `{"eventType":"message.received","channel":"facebook","agentId":"agent_abc123","payload":{"senderId":"fb_user_123","pageId":"fb_page_456","message":"这个产品还有货吗？ هل هذا المنتج متوفر؟ האם המוצר זמין?","conversationId":"conv_xyz"}}`},
	{"instagram with escapes", `{"eventType":"message.received","channel":"instagram","agentId":"agent_abc123","payload":{"senderId":"ig_user_789","message":"Do you ship \"internationally\"? C:\\path\\file\nline 2\ttabbed \u00e9\u2028\u2029 \ud83d\ude00 \ud800","conversationId":"conv_xyz"}}`},
	{"email with html", `{"eventType":"message.received","channel":"email","agentId":"agent_abc123","payload":{"from":"customer@example.com","subject":"Re: <Order #123> & more","message":"<script>alert(1)</script>&amp;&lt; I placed an order yesterday.","conversationId":"conv_xyz"}}`},
	{"web with integer-like keys", `{"eventType":"message.received","channel":"web","agentId":"agent_abc123","payload":{"sessionId":"session_abc","message":"Hi, I need help!","conversationId":"conv_xyz","pageUrl":"https://yoursite.com/pricing?a=1&b=2","answers":{"b":"x","2":"two","10":"ten","1":"one","01":"zero-one"}}}`},
	{"nested arrays, nulls and booleans", `{"eventType":"message.received","agentId":"a","payload":{"items":[[],[{}],[1,[2,[3,null]]],{"ok":true,"no":false,"none":null}],"meta":{"tags":["vip","🇧🇷"],"empty":""}}}`},
	{"duplicate keys", `{"eventType":"message.received","agentId":"a","payload":{"message":"first","message":"last"},"agentId":"b"}`},
	{"encoding/json output", goJSON(map[string]any{"eventType": "message.received", "agentId": "agent_abc123", "payload": map[string]any{"message": "<b>bold</b> & \u2028 é", "n": 1.5, "list": []any{1, "two", nil}}})},
}

func goJSON(v any) string {
	b, err := json.Marshal(v) // escapes <, >, & and U+2028 as \u00xx, unlike JSON.stringify
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestChatzuriReceiverAcceptsOurDeliveries(t *testing.T) {
	const secret = "zuri-sécret-🔑" // non-ASCII: Node keys the HMAC with its UTF-8 bytes too
	url := nodereceiver.Chatzuri(t, secret) + "/webhook"
	s, err := NewChatzuri(secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range chatzuriDeliveries {
		t.Run(d.name, func(t *testing.T) {
			body, err := s.Prepare([]byte(d.json))
			if err != nil {
				t.Fatal(err)
			}
			code, reply := post(t, url, body, signed(t, s, "msg_1", time.Now(), body))
			if code != http.StatusOK || reply != `{"status":"accepted"}` {
				t.Errorf("receiver answered %d %s to %s", code, reply, body)
			}
		})
	}
	// The receiver really checks: these must fail.
	t.Run("tampered body is refused", func(t *testing.T) {
		body, _ := s.Prepare([]byte(`{"eventType":"lead.submit","payload":{"customerName":"Ann"}}`))
		h := signed(t, s, "msg_1", time.Now(), body)
		if code, _ := post(t, url, bytes.Replace(body, []byte("Ann"), []byte("Bob"), 1), h); code != http.StatusBadRequest {
			t.Errorf("receiver answered %d, want 400", code)
		}
	})
	t.Run("raw body signed without Prepare is refused", func(t *testing.T) {
		raw := []byte(`{"eventType":"lead.submit","payload":{"amount":1.50}}`)
		if code, _ := post(t, url, raw, signed(t, s, "msg_1", time.Now(), raw)); code != http.StatusBadRequest {
			t.Errorf("receiver answered %d, want 400", code)
		}
	})
}

func TestNodeAgreesWithJSStringify(t *testing.T) {
	url := nodereceiver.Chatzuri(t, "unused") + "/stringify"
	check := func(t *testing.T, in []byte, want string) {
		t.Helper()
		code, got := post(t, url, in, http.Header{})
		if code != http.StatusOK {
			t.Fatalf("Node answered %d %s to %q", code, got, in)
		}
		if got != want {
			t.Errorf("for %q\nNode          %s\nwant          %s", in, got, want)
		}
	}
	for _, c := range jsStringifyCases {
		// express.json refuses a scalar at the top level.
		if trimmed := strings.TrimLeft(strings.TrimPrefix(c.in, "\uFEFF"), " \t\n\r"); trimmed[0] != '{' && trimmed[0] != '[' {
			continue
		}
		t.Run(c.name, func(t *testing.T) { check(t, []byte(c.in), c.want) })
	}
	r := rand.New(rand.NewPCG(5, 7))
	for _, battery := range []struct {
		name string
		in   []byte
	}{
		{"numbers", numberBattery(r)},
		{"strings", stringBattery(r)},
		{"keys", keyBattery(r)},
	} {
		t.Run("random "+battery.name, func(t *testing.T) {
			in := battery.in
			want, err := JSStringify(in)
			if err != nil {
				t.Fatal(err)
			}
			check(t, in, string(want))
		})
	}
}

// numberBattery is a JSON array of numbers: random float64s, random decimal
// texts that need correct rounding, and every power of ten in range.
func numberBattery(r *rand.Rand) []byte {
	var nums []string
	for range 1000 {
		if f := math.Float64frombits(r.Uint64()); !math.IsNaN(f) && !math.IsInf(f, 0) {
			nums = append(nums, strconv.FormatFloat(f, 'g', -1, 64))
		}
	}
	for range 1000 {
		n := strconv.FormatUint(r.Uint64()>>r.IntN(64), 10)
		if n != "0" {
			n += strings.Repeat("0", r.IntN(6))
		}
		if r.IntN(2) == 0 {
			n += "." + strconv.FormatUint(r.Uint64()>>r.IntN(64), 10)
		}
		nums = append(nums, fmt.Sprintf("%s%se%d", []string{"", "-"}[r.IntN(2)], n, r.IntN(60)-30))
	}
	for e := -330; e <= 310; e++ {
		nums = append(nums, "1e"+strconv.Itoa(e), "-9.999999e"+strconv.Itoa(e))
	}
	return []byte("[" + strings.Join(nums, ",") + "]")
}

// stringBattery is a JSON array of strings mixing escapes (surrogates
// included), UTF-8 from many scripts, and invalid UTF-8.
func stringBattery(r *rand.Rand) []byte {
	scripts := []rune("éçñßøÆ€中文字日本語한국어عربيةעברית😀🇧🇷\u2028\u2029\u00a0\ufeff")
	pieces := []func() string{
		func() string { return string(rune(' ' + r.IntN(95))) },
		func() string { return []string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`}[r.IntN(8)] },
		func() string { return fmt.Sprintf(`\u%04x`, r.IntN(0x10000)) },
		func() string { return fmt.Sprintf(`\u%04X`, 0xD800+r.IntN(0x800)) },
		func() string { return string(scripts[r.IntN(len(scripts))]) },
		func() string { return string(rune(0x80 + r.IntN(0x10FFFF-0x80))) },
		func() string {
			b := make([]byte, 1+r.IntN(3))
			for i := range b {
				b[i] = byte(0x80 + r.IntN(0x80))
			}
			return string(b)
		},
		func() string { // a character cut short, or with one byte changed
			b := []byte(string(rune(0x80 + r.IntN(0x10FFFF-0x80))))
			if r.IntN(2) == 0 {
				return string(b[:1+r.IntN(len(b)-1)])
			}
			b[r.IntN(len(b))] = byte(0x80 + r.IntN(0x80))
			return string(b)
		},
	}
	var strs []string
	for range 1000 {
		var s strings.Builder
		for range r.IntN(12) {
			p := pieces[r.IntN(len(pieces))]()
			if p == `"` || p == `\` {
				continue
			}
			s.WriteString(p)
		}
		strs = append(strs, `"`+s.String()+`"`)
	}
	return []byte("[" + strings.Join(strs, ",") + "]")
}

// keyBattery is a JSON array of objects with keys that JavaScript orders
// specially, and duplicates.
func keyBattery(r *rand.Rand) []byte {
	keys := []string{"0", "1", "2", "10", "99", "01", "-1", "1.5", "1e3", "4294967294", "4294967295", "9007199254740993", "a", "b", "é", "__proto__", "constructor", "", " 1", `\u0031`}
	var objs []string
	for range 200 {
		var members []string
		for i := range r.IntN(8) {
			members = append(members, fmt.Sprintf(`"%s":%d`, keys[r.IntN(len(keys))], i))
		}
		objs = append(objs, "{"+strings.Join(members, ",")+"}")
	}
	return []byte("[" + strings.Join(objs, ",") + "]")
}

func post(t *testing.T, url string, body []byte, h http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(reply)
}
