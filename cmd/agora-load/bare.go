package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/olahol/melody"
)

// bareServerFlag runs this binary as the baseline: a bare melody server
// that broadcasts every message POSTed to /publish?room=R to the sessions
// of room R, with no database. It is a subprocess of its own so that its
// RSS and CPU are measured apart from the load tool's.
const bareServerFlag = "--bare-server"

// bareQueue is the only melody setting the baseline changes: its send
// queue holds 16 messages rather than 256, the figure the targets
// were measured with.
const bareQueue = 16

type bareServer struct {
	m       *melody.Melody
	mu      sync.RWMutex
	rooms   map[string]map[*melody.Session]struct{}
	cache   map[string][]*melody.Session // snapshot per room, dropped on change
	dropped atomic.Int64
}

func newBareServer() *bareServer {
	b := &bareServer{
		m:     melody.New(),
		rooms: map[string]map[*melody.Session]struct{}{},
		cache: map[string][]*melody.Session{},
	}
	b.m.Config.MessageBufferSize = bareQueue
	b.m.HandleConnect(func(s *melody.Session) {
		room := s.Request.URL.Query().Get("room")
		b.mu.Lock()
		if b.rooms[room] == nil {
			b.rooms[room] = map[*melody.Session]struct{}{}
		}
		b.rooms[room][s] = struct{}{}
		delete(b.cache, room)
		b.mu.Unlock()
		q, _ := json.Marshal(room)
		_ = s.Write([]byte(`{"op":"subscribed","room":` + string(q) + `,"seq":0}`))
	})
	b.m.HandleDisconnect(func(s *melody.Session) {
		room := s.Request.URL.Query().Get("room")
		b.mu.Lock()
		delete(b.rooms[room], s)
		delete(b.cache, room)
		b.mu.Unlock()
	})
	b.m.HandleError(func(_ *melody.Session, err error) {
		if errors.Is(err, melody.ErrMessageBufferFull) {
			b.dropped.Add(1)
		}
	})
	return b
}

func (b *bareServer) sessions(room string) []*melody.Session {
	b.mu.RLock()
	ss, ok := b.cache[room]
	b.mu.RUnlock()
	if ok {
		return ss
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ss = make([]*melody.Session, 0, len(b.rooms[room]))
	for s := range b.rooms[room] {
		ss = append(ss, s)
	}
	b.cache[room] = ss
	return ss
}

func (b *bareServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) { _ = b.m.HandleRequest(w, r) })
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]int64{"dropped": b.dropped.Load(), "sessions": int64(b.m.Len())})
	})
	// The same runtime figures Agora's /metrics has, for the memory
	// breakdown per connection.
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(w, "go_memstats_heap_inuse_bytes %d\ngo_memstats_stack_inuse_bytes %d\ngo_goroutines %d\n",
			ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine())
	})
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		msg, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// What melody's BroadcastMultiple does, minus its stop at the
		// first closed session.
		for _, s := range b.sessions(r.URL.Query().Get("room")) {
			_ = s.Write(msg)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// bareServerMain serves until ctx ends (SIGTERM).
func bareServerMain(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("agora-load "+bareServerFlag, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	pprofAddr := fs.String("pprof-addr", "", "pprof listen address (loopback)")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	b := newBareServer()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: b.handler(), ReadHeaderTimeout: 10 * time.Second}
	if *pprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		psrv := &http.Server{Addr: *pprofAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = psrv.ListenAndServe() }()
		defer psrv.Close()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case <-ctx.Done():
		_ = b.m.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		return err
	}
}

// bareWriter publishes to the bare server a message shaped like Agora's
// event for the same comment, padded to eventBytes, Agora's mean event
// size in the same run: the same bytes to the same clients.
func bareWriter(base string, c *http.Client, eventBytes int) writeFunc {
	return func(ctx context.Context, room, k int, stamp func() []byte) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		t0 := time.Now()
		msg := bareEvent(room, k, stamp(), eventBytes)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost,
			base+"/publish?room=r"+strconv.Itoa(room), bytes.NewReader(msg))
		if err != nil {
			return 0, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return 0, &apiError{Status: resp.StatusCode}
		}
		return time.Since(t0), nil
	}
}

func bareEvent(room, k int, body []byte, size int) []byte {
	head := fmt.Sprintf(`{"op":"event","room":"r%d","seq":%d,"type":"comment.created","data":{"body":"`, room, k+1)
	tail := `"},"at":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}`
	b := make([]byte, 0, max(size, len(head)+len(body)+len(tail)))
	b = append(b, head...)
	b = append(b, body...)
	for len(b)+len(tail) < size {
		b = append(b, 'x')
	}
	return append(b, tail...)
}

func bareStats(ctx context.Context, base string) (dropped int64) {
	var out map[string]int64
	if err := call(ctx, &http.Client{Timeout: 5 * time.Second}, http.MethodGet, base+"/stats", "", nil, &out, http.StatusOK); err != nil {
		return -1
	}
	return out["dropped"]
}
