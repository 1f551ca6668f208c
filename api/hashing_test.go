package api_test

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"agora/api/apitest"
	"agora/store"
)

// burst sends n wrong-password logins for username at once and returns
// the responses.
func burst(t *testing.T, s *apitest.Server, slug, username string, n int) []apitest.Response {
	t.Helper()
	out := make([]apitest.Response, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = s.Call(t, apitest.Request{Method: "POST", Path: apitest.TenantPath(slug, "auth/login"),
				Body: map[string]string{"username": username, "password": fmt.Sprintf("wrong password %d", i)}})
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// TestLoginBurstMemoryBounded: 64 logins at once with the production
// argon2id parameters (19 MiB each) and the default number of hashing
// slots (one per CPU) raise memory by at most 19 MiB per slot, plus as
// much again for the buffers of finished hashes that the garbage collector
// has not reclaimed yet (GOGC=100 lets the heap grow to twice what was
// live), plus 64 MiB. Without the bound the burst took over 1 GiB.
func TestLoginBurstMemoryBounded(t *testing.T) {
	s := apitest.Start(t, apitest.Options{Hasher: store.DefaultHasher(), Configure: noLimits,
		// Every login waits its turn here: the test is about memory, not
		// about refusing.
		ConfigureStore: func(c *store.Config) { c.HashWait = 10 * time.Minute }})
	s.NewTenant(t, "acme")
	s.Register(t, "acme", "alice")
	slots := s.DB.HashStats().Slots
	if slots != runtime.NumCPU() {
		t.Errorf("%d hashing slots, want one per CPU (%d)", slots, runtime.NumCPU())
	}
	const mib = 1 << 20
	bound := int64(2*runtime.NumCPU()*19*mib + 64*mib)

	runtime.GC()
	debug.FreeOSMemory()
	// Writing 5 to clear_refs resets VmHWM, the peak RSS, to the current
	// RSS, so the peak read afterwards is this burst's.
	rssOK := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	rss0 := procStatusBytes(t, "VmRSS")
	heap := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(heap)
	heap0 := heap[0].Value.Uint64()
	// The heap is sampled every millisecond; an argon2id buffer lives for
	// tens of milliseconds, so its peak is not missed.
	var heapPeak uint64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			metrics.Read(heap)
			heapPeak = max(heapPeak, heap[0].Value.Uint64())
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	t0 := time.Now()
	rs := burst(t, s, "acme", "alice", 64)
	took := time.Since(t0)
	close(stop)
	<-sampled
	for i, r := range rs {
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("login %d: %d %s, want 401", i, r.Status, r.Body)
		}
	}
	heapRise := int64(heapPeak) - int64(heap0)
	t.Logf("64 logins through %d slots in %v: heap peak +%d MiB, bound %d MiB", slots, took, heapRise/mib, bound/mib)
	if heapRise > bound {
		t.Errorf("the heap grew by %d MiB during the burst, want at most %d MiB (%d slots)", heapRise/mib, bound/mib, slots)
	}
	// The race detector's shadow memory multiplies RSS; the heap measure
	// above holds either way, RSS is checked where it means what it says.
	if !rssOK || raceEnabled() {
		t.Logf("RSS not checked (clear_refs writable %v, race detector %v)", rssOK, raceEnabled())
		return
	}
	rssRise := procStatusBytes(t, "VmHWM") - rss0
	t.Logf("RSS peak +%d MiB", rssRise/mib)
	if rssRise > bound {
		t.Errorf("RSS rose by %d MiB during the burst, want at most %d MiB (%d slots)", rssRise/mib, bound/mib, slots)
	}
}

// TestLoginBurstBeyondWaitIs503: with one hashing slot and a short wait,
// logins that cannot get the slot in time are 503 unavailable with
// Retry-After, never 500, and the server logs people in again right after.
func TestLoginBurstBeyondWaitIs503(t *testing.T) {
	// About 50 passes over 4 MiB: each check holds the slot far longer
	// than the wait.
	slow := store.Hasher{MemoryKiB: 4 << 10, Time: 50, Threads: 1}
	s := apitest.Start(t, apitest.Options{Hasher: slow, Configure: noLimits,
		ConfigureStore: func(c *store.Config) { c.HashConcurrency, c.HashWait = 1, 50*time.Millisecond }})
	s.NewTenant(t, "acme")
	s.Register(t, "acme", "alice")
	before := s.DB.HashStats()
	unavailable := 0
	for i, r := range burst(t, s, "acme", "alice", 8) {
		switch r.Status {
		case http.StatusUnauthorized:
		case http.StatusServiceUnavailable:
			unavailable++
			wantError(t, fmt.Sprintf("login %d", i), r.Status, r.Body, http.StatusServiceUnavailable, "unavailable")
			if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 {
				t.Errorf("login %d: 503 with Retry-After %q, want whole seconds", i, r.Header.Get("Retry-After"))
			}
		default:
			t.Errorf("login %d: %d %s, want 401 or 503", i, r.Status, r.Body)
		}
	}
	after := s.DB.HashStats()
	t.Logf("%d of 8 refused; hashing stats %+v", unavailable, after)
	if unavailable == 0 {
		t.Errorf("no login was refused: 8 at once through one slot with a %v wait", 50*time.Millisecond)
	}
	if got := after.Refused - before.Refused; got != int64(unavailable) {
		t.Errorf("%d refusals counted, %d answered 503", got, unavailable)
	}
	if status, body := s.Do(t, "POST", apitest.TenantPath("acme", "auth/login"), "",
		map[string]string{"username": "alice", "password": apitest.Password}); status != http.StatusOK {
		t.Errorf("login after the burst: %d %s", status, body)
	}
}

// procStatusBytes reads a "VmRSS:   123 kB" line of /proc/self/status.
func procStatusBytes(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatalf("read /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// raceEnabled reports whether this binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
