package caddymodule

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/har"
)

// Record appends what a handler captures to a HAR file, to replay it with
// `caddy chat-webhooks try` or `rederive`. Credentials (Authorization,
// Cookie, Set-Cookie, API-key headers and query parameters) are masked, and
// so are Redact's and the handler's webhooks' redact paths in JSON bodies.
type Record struct {
	// Path of the HAR file; it is created when the first exchange is
	// recorded, never by loading or validating a configuration.
	Path string `json:"path"`
	// MaxSize is the size at which the file is rotated; default 64 MiB.
	MaxSize int64 `json:"max_size,omitempty"`
	// Keep is how many rotated files (path.1, path.2…) are kept; default 3.
	Keep int `json:"keep,omitempty"`
	// Redact lists paths (gjson syntax) masked in JSON request and response
	// bodies, beside the webhooks' redact paths.
	Redact []string `json:"redact,omitempty"`
}

// Defaults and bounds of Record.
const (
	defaultRecordSize = 64 << 20
	defaultRecordKeep = 3
	maxRecordSize     = 4 << 30
	maxRecordKeep     = 100
	recordQueue       = 256 // exchanges waiting to be written: each holds up to two captured bodies
)

// recordings shares one writer per file between the configurations that
// record to it, so that a reload neither reopens it nor writes it twice.
var recordings = caddy.NewUsagePool()

// recording is a handler's compiled Record.
type recording struct {
	w       *recorder
	key     string
	maxSize int64
	keep    int
	redact  []string
}

// recordJob is one exchange to write with its handler's settings.
type recordJob struct {
	rec *recording
	ex  *capture.Exchange
}

// recorder writes one HAR file. It is inert until the first exchange: the
// file is opened and its goroutine started then.
type recorder struct {
	path    string
	logger  *zap.Logger
	jobs    chan recordJob
	start   sync.Once
	done    chan struct{}
	wg      sync.WaitGroup
	stopped atomic.Bool
	failed  atomic.Bool // an error was logged; logged again once writing works
}

// compile joins the writer of the file, without opening it.
func (r *Record) compile(ctx caddy.Context, webhooks []Webhook) (*recording, error) {
	path, err := filepath.Abs(r.Path)
	if err != nil {
		return nil, err
	}
	rec := &recording{key: "record:" + path, maxSize: r.MaxSize, keep: r.Keep, redact: r.Redact}
	if rec.maxSize == 0 {
		rec.maxSize = defaultRecordSize
	}
	if rec.keep == 0 {
		rec.keep = defaultRecordKeep
	}
	for _, wh := range webhooks {
		rec.redact = append(rec.redact, wh.Redact...)
	}
	logger := ctx.Logger().With(zap.String("record", path))
	val, _, err := recordings.LoadOrNew(rec.key, func() (caddy.Destructor, error) {
		return &recorder{path: path, logger: logger, jobs: make(chan recordJob, recordQueue), done: make(chan struct{})}, nil
	})
	if err != nil {
		return nil, err
	}
	rec.w = val.(*recorder)
	return rec, nil
}

// add queues an exchange without ever blocking the request: when the
// writer is behind, the exchange is not recorded, and counted.
func (rec *recording) add(ex *capture.Exchange) {
	w := rec.w
	if w.stopped.Load() {
		return
	}
	w.start.Do(func() {
		w.wg.Add(1)
		go w.run()
	})
	select {
	case w.jobs <- recordJob{rec: rec, ex: ex}:
	default:
		metrics.exchangesDropped.WithLabelValues("record_full").Inc()
	}
}

// release lets go of the writer; the last configuration using it closes it.
func (rec *recording) release() error {
	_, err := recordings.Delete(rec.key)
	return err
}

func (w *recorder) run() {
	defer w.wg.Done()
	var out *har.Appender
	defer func() {
		if out != nil {
			out.Close()
		}
	}()
	write := func(j recordJob) {
		var err error
		if out == nil {
			out, err = har.OpenAppender(w.path)
		}
		if err == nil {
			e := har.FromExchange(j.ex)
			e.Redact(j.rec.redact)
			err = out.Append(e, j.rec.maxSize, j.rec.keep)
		}
		if err != nil {
			metrics.exchangesDropped.WithLabelValues("record_failed").Inc()
			if !w.failed.Swap(true) {
				w.logger.Error("recording exchanges failed", zap.Error(err))
			}
			return
		}
		w.failed.Store(false)
	}
	for {
		select {
		case j := <-w.jobs:
			write(j)
		case <-w.done:
			for {
				select {
				case j := <-w.jobs:
					write(j)
				default:
					return
				}
			}
		}
	}
}

// Destruct writes what is queued and closes the file.
func (w *recorder) Destruct() error {
	w.stopped.Store(true)
	w.start.Do(func() {}) // a writer that never started must not start now
	close(w.done)
	w.wg.Wait()
	return nil
}

// check validates a Record.
func (r *Record) check() error {
	if r.Path == "" {
		return fmt.Errorf("record needs a file path")
	}
	return firstError(
		inRange("record max_size", r.MaxSize, maxRecordSize, "67108864 (64MiB)"),
		inRange("record keep", r.Keep, maxRecordKeep, "3"),
	)
}
