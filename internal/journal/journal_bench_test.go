package journal

import "testing"

// BenchmarkAppend is what the journal adds to a request: encoding one
// chat exchange and writing it. Records are committed 64 at a time, as
// the pipeline does after a grouped Enqueue, so segments rotate and are
// deleted as they would be under steady traffic.
func BenchmarkAppend(b *testing.B) {
	j, _, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	ex := chatExchange(1)
	var done []Ticket
	b.ReportAllocs()
	for b.Loop() {
		t, err := j.Append(7, &ex)
		if err != nil {
			b.Fatal(err)
		}
		if done = append(done, t); len(done) == 64 {
			j.Commit(done)
			done = done[:0]
		}
	}
}
