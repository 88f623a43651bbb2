package har

import "testing"

// Whatever a HAR file holds, reading it fails or yields exchanges; it never
// panics, and a read exchange can be written back.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"log":{"entries":[{"request":{"method":"POST","url":"https://x/a?b=1","headers":[{"name":":authority","value":"x"}],"postData":{"mimeType":"multipart/form-data; boundary=b","params":[{"name":"f","value":"v","fileName":"a.txt"}]}},"response":{"status":200,"headers":[{"name":"Content-Encoding","value":"gzip"}],"content":{"text":"H4sI","encoding":"base64"}}}]}}`))
	f.Add([]byte(`{"request":{"method":"GET","url":"/x","headers":{"A":"b"},"body":[1]},"response":{"status":1,"headers":{},"body":"x"}}`))
	f.Add([]byte(`{"startedDateTime":"2025-11-15T03:35:14Z","time":1e300,"request":{"method":"GET","url":""},"response":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Parse(data)
		if err != nil {
			return
		}
		for i := range entries {
			ex, err := entries[i].Exchange()
			if err != nil {
				continue
			}
			e := FromExchange(ex)
			e.Redact([]string{"a.b", "c"})
		}
	})
}
