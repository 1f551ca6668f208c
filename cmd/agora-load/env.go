package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"agora/store/devdb"
)

// env is the private world of a run: a temporary directory under /tmp
// that serves as the servers' AGORA_DATA_DIR, and the PostgreSQL cluster
// in it. The tool starts the cluster itself, before any pinning, so that
// PostgreSQL floats over every core while the server is pinned; `agora
// serve` finds it running and reuses it (and, not having started it,
// leaves it running when it exits).
type env struct {
	dir     string
	cluster *devdb.Cluster
	serial  int
}

func newEnv(ctx context.Context, logw io.Writer) (*env, error) {
	dir, err := os.MkdirTemp("/tmp", "agora-load-")
	if err != nil {
		return nil, err
	}
	// PostgreSQL runs as the postgres user when we are root: it must be
	// able to traverse the directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &env{dir: dir}
	t0 := time.Now()
	cl, err := devdb.Start(ctx, devdb.Options{Dir: filepath.Join(dir, "pg"), Log: zerolog.Nop()})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("private PostgreSQL: %w", err)
	}
	e.cluster = cl
	fmt.Fprintf(logw, "private PostgreSQL ready in %s (%s)\n", time.Since(t0).Round(time.Millisecond), dir)
	return e, nil
}

// close stops the cluster (only if this tool started it) and removes the
// directory.
func (e *env) postmaster() int {
	if e == nil {
		return 0
	}
	return postmasterPID(filepath.Join(e.dir, "pg", "data"))
}

func (e *env) close(logw io.Writer) {
	if e.cluster != nil && e.cluster.StartedHere() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := e.cluster.Stop(ctx); err != nil {
			fmt.Fprintln(logw, "stop PostgreSQL:", err)
		}
		cancel()
	}
	if err := os.RemoveAll(e.dir); err != nil {
		fmt.Fprintln(logw, "remove", e.dir+":", err)
	}
}

// server is a target the tool started (or was pointed at).
type server struct {
	base       string // http://127.0.0.1:port
	adminToken string
	pid        int    // 0: unknown (a --url server without --server-pid)
	proc       *proc  // nil: not ours
	pprofBase  string // http://host:port of the pprof endpoints; "" if none
	pgPID      int    // the cluster's postmaster, for its CPU figures
}

func (s *server) stop() error {
	if s.proc == nil {
		return nil
	}
	return s.proc.stop(30 * time.Second)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func pinArg(pin bool) string {
	if pin {
		return strconv.Itoa(serverCPU)
	}
	return ""
}

// serveEnv is the environment `agora serve` gets from the tool, on top of
// the tool's own.
func serveEnv(o options, dataDir, addr, adminAddr, token string) []string {
	env := []string{
		"AGORA_DATA_DIR=" + dataDir,
		"AGORA_ADDR=" + addr,
		"AGORA_ADMIN_TOKEN=" + token,
		"AGORA_ADMIN_ADDR=" + adminAddr,
		"AGORA_LOG_LEVEL=warn",
		"AGORA_LOG_FORMAT=json",
		"AGORA_RATE_LIMITS=" + strconv.FormatBool(o.RateLimits),
		// The tenant's WebSocket quota is 10,000 per instance: larger runs
		// raise it (quotas are not what they measure).
		"AGORA_TENANT_MAX_SESSIONS=" + strconv.Itoa(max(10000, o.Subscribers)),
	}
	if !o.TenantQuota {
		env = append(env, liftedQuotaEnv(o)...)
	}
	return env
}

// liftedQuotaRate is the tenant write quota of the servers the tool
// starts (all but the tenants scenario's, which measures the quota): far
// above what any writers reach here, so that a run measures the fan-out
// or the write path and not serve's default quota of 100 writes/s per
// tenant, while the quota's check still runs on every write as in
// production. All of a run's writes come from one tenant.
const liftedQuotaRate = 1_000_000

// liftedQuotaEnv is that quota: the rate above, and as many write slots
// as the tool ever has writes in flight, so that no write waits for one
// (the database pool is what they queue for).
func liftedQuotaEnv(o options) []string {
	return []string{
		"AGORA_TENANT_WRITE_RATE=" + strconv.Itoa(liftedQuotaRate),
		"AGORA_TENANT_WRITE_SLOTS=" + strconv.Itoa(max(o.Writers, toolWrites)),
	}
}

// startAgora starts `agora serve` on a free loopback port with the env's
// cluster and waits until /readyz answers 200.
func startAgora(ctx context.Context, o options, e *env, logw io.Writer) (*server, error) {
	if _, err := os.Stat(o.ServerBin); err != nil {
		return nil, fmt.Errorf("server binary %s: %w (run `task build`, or pass --server-bin)", o.ServerBin, err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	token := randomHex(24)
	e.serial++
	// exec keeps the last of duplicate variables: ours win over the
	// caller's environment.
	env := append(os.Environ(), serveEnv(o, e.dir, addr, adminAddr, token)...)
	args := append([]string{"serve"}, o.ServerFlags...)
	logPath := filepath.Join(e.dir, fmt.Sprintf("agora-%d.log", e.serial))
	p, err := startProc("agora serve", pinArg(o.Pin), o.ServerBin, args, env, logPath)
	if err != nil {
		return nil, err
	}
	s := &server{base: "http://" + addr, adminToken: token, pid: p.pid, proc: p,
		pprofBase: "http://" + adminAddr}
	if err := waitReady(ctx, s.base+"/readyz", p, 90*time.Second); err != nil {
		_ = p.stop(10 * time.Second)
		return nil, fmt.Errorf("agora serve did not become ready: %w\n--- its log ---\n%s", err, p.logTail())
	}
	return s, nil
}

// startBare starts this binary as the bare melody server.
func startBare(ctx context.Context, o options, dir string, serial int) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	pprofAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, fmt.Sprintf("bare-%d.log", serial))
	p, err := startProc("bare melody server", pinArg(o.Pin), self,
		[]string{bareServerFlag, "--addr", addr, "--pprof-addr", pprofAddr}, os.Environ(), logPath)
	if err != nil {
		return nil, err
	}
	s := &server{base: "http://" + addr, pid: p.pid, proc: p, pprofBase: "http://" + pprofAddr}
	if err := waitReady(ctx, s.base+"/healthz", p, 30*time.Second); err != nil {
		_ = p.stop(10 * time.Second)
		return nil, fmt.Errorf("bare server did not become ready: %w\n--- its log ---\n%s", err, p.logTail())
	}
	return s, nil
}

// settle waits d, then, if the server has pprof, forces a garbage
// collection (the heap profile's gc=1) and gives the scavenger a second to
// hand freed memory back, so RSS readings are not the garbage of whatever
// ran before.
func (s *server) settle(ctx context.Context, d time.Duration) bool {
	sleepCtx(ctx, d)
	if s.pprofBase == "" {
		return false
	}
	c := &http.Client{Timeout: 30 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.pprofBase+"/debug/pprof/heap?gc=1", nil)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	// The scavenger returns freed pages over a few seconds: wait until the
	// RSS stops falling.
	last := rss(s.pid)
	for stable, i := 0, 0; stable < 5 && i < 50 && ctx.Err() == nil; i++ {
		sleepCtx(ctx, 200*time.Millisecond)
		now := rss(s.pid)
		if last-now > last/200 {
			stable = 0
		} else {
			stable++
		}
		last = now
	}
	return true
}

// memStats reads the Go runtime's heap and stack in use (bytes) and the
// goroutine count from the server's /metrics; ok is false without them.
func (s *server) memStats(ctx context.Context) (heap, stack, goroutines int64, ok bool) {
	c := &http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/metrics", nil)
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return 0, 0, 0, false
	}
	found := 0
	for _, line := range strings.Split(string(b), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_memstats_heap_inuse_bytes":
			heap, found = int64(f), found+1
		case "go_memstats_stack_inuse_bytes":
			stack, found = int64(f), found+1
		case "go_goroutines":
			goroutines, found = int64(f), found+1
		}
	}
	return heap, stack, goroutines, found == 3
}

// saveHeap writes the server's heap profile (after a GC) to path; "" if it
// has no pprof endpoint.
func (s *server) saveHeap(ctx context.Context, path string) string {
	if s.pprofBase == "" {
		return ""
	}
	return download(ctx, s.pprofBase+"/debug/pprof/heap?gc=1", 30*time.Second, path)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func waitReady(ctx context.Context, url string, p *proc, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.exited() {
			return fmt.Errorf("it exited: %v", p.waitErr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
