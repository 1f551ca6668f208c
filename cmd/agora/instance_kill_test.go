package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const childEnv = "AGORA_TEST_CHILD"

// startProcess runs `agora serve` as a separate process (this test binary,
// re-executed) and returns its base URL and the process, so a test can
// kill it outright.
func startProcess(t *testing.T, env map[string]string) (string, *os.Process) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=serve")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var l struct {
				Msg  string `json:"message"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "serving" {
				addr <- l.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a, cmd.Process
	case <-time.After(time.Minute):
		t.Fatal("the child server did not start")
		return "", nil
	}
}

// TestKilledInstanceUsersLeave: bob is connected to instance B only; B is
// killed with SIGKILL (no goodbye, no closing frames); watchers on A see
// bob leave within three missed heartbeats, as the README promises.
func TestKilledInstanceUsersLeave(t *testing.T) {
	const heartbeat = 200 * time.Millisecond
	env := withNewDatabase(t, map[string]string{
		"AGORA_ADDR":      "127.0.0.1:0",
		"AGORA_SEED_DEMO": "true",
		"AGORA_DATA_DIR":  t.TempDir(),
		"AGORA_HEARTBEAT": heartbeat.String(),
	})
	var stdout syncBuffer
	a, _ := serving(t, env, &stdout, nil)
	m := regexp.MustCompile(`demo admin: (\S+) / (\S+)`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no demo credentials in %q", stdout.String())
	}
	b, proc := startProcess(t, env)

	admin := restLogin(t, a, "admin", m[2])
	bob := restRegister(t, a, "bob")
	room := "tenant"

	watcher := wsDial(t, a, admin)
	wsSend(t, watcher, map[string]string{"op": "subscribe", "room": room})
	onB := wsDial(t, b, bob)
	wsSend(t, onB, map[string]string{"op": "subscribe", "room": room})
	wsWaitPresence(t, watcher, "joins", "bob", 10*time.Second)

	if err := proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	wsWaitPresence(t, watcher, "leaves", "bob", 10*time.Second)
	if took, bound := time.Since(killed), 3*heartbeat+time.Second; took > bound {
		t.Fatalf("bob left %v after B was killed, want within %v", took, bound)
	}
}

func restLogin(t *testing.T, base, user, password string) string {
	t.Helper()
	return restToken(t, base+"/api/v1/t/demo/auth/login", map[string]string{"username": user, "password": password})
}

func restRegister(t *testing.T, base, user string) string {
	t.Helper()
	return restToken(t, base+"/api/v1/t/demo/auth/register", map[string]string{"username": user, "password": "bob-password-123"})
}

func restToken(t *testing.T, url string, body map[string]string) string {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := httpPostJSON(url, b)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Token string }
	if err := json.Unmarshal(resp, &out); err != nil || out.Token == "" {
		t.Fatalf("POST %s: %s (%v)", url, resp, err)
	}
	return out.Token
}

func wsDial(t *testing.T, base, token string) *websocket.Conn {
	t.Helper()
	h := map[string][]string{"Authorization": {"Bearer " + token}}
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/api/v1/t/demo/ws", h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func wsSend(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	if err := c.WriteJSON(v); err != nil {
		t.Fatal(err)
	}
}

// wsWaitPresence reads until a presence message lists user under field
// ("joins" or "leaves").
func wsWaitPresence(t *testing.T, c *websocket.Conn, field, user string, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %s in presence %s: %v", user, field, err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			var msg map[string]json.RawMessage
			if json.Unmarshal([]byte(line), &msg) != nil || string(msg["op"]) != `"presence"` {
				continue
			}
			var entries []struct {
				User struct{ Username string } `json:"user"`
			}
			_ = json.Unmarshal(msg[field], &entries)
			for _, e := range entries {
				if e.User.Username == user {
					return
				}
			}
		}
	}
}

func httpPostJSON(url string, body []byte) ([]byte, error) {
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	return b, nil
}
