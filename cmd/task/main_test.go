package main

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A SIGTERM to `go tool task up` stops the server and the private
// PostgreSQL it started, not only Task.
func TestSIGTERMStopsServerAndItsPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the whole program")
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	dataDir := t.TempDir()
	// As root, PostgreSQL runs as the postgres user, which must be able
	// to reach the cluster's directory.
	for _, d := range []string{filepath.Dir(dataDir), dataDir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}

	var out lockedBuffer
	up := exec.Command("go", "tool", "task", "up")
	up.Dir = root
	up.Env = append(os.Environ(), "AGORA_ADDR="+addr, "AGORA_DATA_DIR="+dataDir,
		"DATABASE_URL=", "AGORA_MIGRATE_DATABASE_URL=", "AGORA_LOG_FORMAT=json")
	up.Stdout, up.Stderr = &out, &out
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- up.Wait() }()
	var postmaster int
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = up.Process.Kill()
		}
		if postmaster > 0 && alive(postmaster) {
			_ = syscall.Kill(postmaster, syscall.SIGINT) // fast shutdown
		}
	})

	healthy := func() bool {
		c := http.Client{Timeout: time.Second}
		res, err := c.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}
	// The first run builds the server and initialises a cluster.
	for deadline := time.Now().Add(3 * time.Minute); !healthy(); {
		select {
		case err := <-exited:
			t.Fatalf("go tool task up ended before serving (%v):\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving after 3 minutes:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond) // polling for a condition, within the deadline above
	}
	pidFile, err := os.ReadFile(filepath.Join(dataDir, "pg", "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	postmaster, _ = strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	if postmaster <= 0 || !alive(postmaster) {
		t.Fatalf("no running postmaster in %s", pidFile)
	}

	if err := up.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("go tool task up still running 30 s after SIGTERM:\n%s", out.String())
	}
	if healthy() {
		t.Error("the server still answers after SIGTERM")
	}
	for deadline := time.Now().Add(10 * time.Second); alive(postmaster); {
		if time.Now().After(deadline) {
			t.Fatalf("PostgreSQL (pid %d) still runs after SIGTERM:\n%s", postmaster, out.String())
		}
		time.Sleep(100 * time.Millisecond) // polling for a condition, within the deadline above
	}
	if !strings.Contains(out.String(), "stopped cluster") {
		t.Errorf("the server did not stop its cluster itself:\n%s", out.String())
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }
