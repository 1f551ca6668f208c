package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dialerFrom binds outgoing connections to a loopback source address.
// IP_BIND_ADDRESS_NO_PORT defers the port choice to connect(), so the
// ephemeral range is shared per destination rather than per source
// address, and TIME_WAIT ports of earlier runs do not block the bind.
func dialerFrom(ip net.IP) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1}
	if ip != nil {
		d.LocalAddr = &net.TCPAddr{IP: ip}
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return d
}

func httpClient(ip net.IP, conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         dialerFrom(ip).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

// apiError is a non-expected HTTP answer.
type apiError struct {
	Status int
	Body   string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// call does one JSON request and decodes a want-status answer into out.
func call(ctx context.Context, c *http.Client, method, url, token string, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		if len(b) > 300 {
			b = b[:300]
		}
		return &apiError{Status: resp.StatusCode, Body: string(bytes.TrimSpace(b))}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// forum is what a run creates on an Agora server: a tenant, users, a board
// and one post per room.
type forum struct {
	base  string
	slug  string
	users []string // session tokens; users[0] is the tenant's admin
	posts []string // post ids, one per room
}

func (f *forum) path(p string) string { return f.base + "/api/v1/t/" + f.slug + "/" + p }

// Registrations are limited per client IP (20 an hour by default), so
// users are registered from many loopback addresses, 127.S.x.y with a
// random S per run: a limit per IP is, by design, no limit on a host
// with many addresses.
const registrationsPerIP = 20

func registrationIP(second byte, i int) net.IP {
	n := i / registrationsPerIP
	return net.IPv4(127, second, byte(n/250), byte(n%250+1))
}

// toolWrites is the most writes the tool has in flight outside the write
// phase's writers: setup's posts, the reconnect storm's comments.
const toolWrites = 8

// setupOnce sets the forum up on a server of its own, stopped after, for
// the paired scenarios that measure fresh servers: registration's garbage
// is not theirs.
func setupOnce(ctx context.Context, o options, e *env, logw io.Writer, nUsers, nPosts int) (*forum, error) {
	srv, err := startAgora(ctx, o, e, logw)
	if err != nil {
		return nil, err
	}
	f, err := setupForum(ctx, srv, nUsers, nPosts, logw)
	_ = srv.stop()
	return f, err
}

// setupForum creates the run's tenant, nUsers users, a board and nPosts
// posts.
func setupForum(ctx context.Context, s *server, nUsers, nPosts int, logw io.Writer) (*forum, error) {
	t0 := time.Now()
	admin := httpClient(nil, 4)
	defer admin.CloseIdleConnections()
	f := &forum{base: s.base, slug: "load-" + randomHex(6)}
	if err := call(ctx, admin, http.MethodPost, s.base+"/api/v1/tenants", s.adminToken,
		map[string]string{"slug": f.slug, "name": "agora-load " + f.slug}, nil, http.StatusCreated); err != nil {
		return nil, fmt.Errorf("create tenant: %w", err)
	}
	var err error
	if f.users, err = registerUsers(ctx, f, nUsers); err != nil {
		return nil, err
	}
	var board struct {
		ID string `json:"id"`
	}
	if err := call(ctx, admin, http.MethodPost, f.path("boards"), f.users[0],
		map[string]string{"name": "Load"}, &board, http.StatusCreated); err != nil {
		return nil, fmt.Errorf("create board: %w", err)
	}
	// Posts are limited to 5 a minute per user: spread them.
	f.posts = make([]string, nPosts)
	err = parallel(ctx, nPosts, toolWrites, func(ctx context.Context, i int) error {
		var p struct {
			ID string `json:"id"`
		}
		tok := f.users[i%len(f.users)]
		if err := call(ctx, admin, http.MethodPost, f.path("boards/"+board.ID+"/posts"), tok,
			map[string]string{"title": "Room " + strconv.Itoa(i), "body": "agora-load room"}, &p, http.StatusCreated); err != nil {
			return fmt.Errorf("create post %d: %w", i, err)
		}
		f.posts[i] = p.ID
		return nil
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "setup: tenant %s, %d users, %d posts in %s\n", f.slug, nUsers, nPosts, time.Since(t0).Round(time.Millisecond))
	return f, nil
}

func registerUsers(ctx context.Context, f *forum, n int) ([]string, error) {
	second := byte(1 + rand.IntN(254))
	clients := map[int]*http.Client{}
	var mu sync.Mutex
	clientFor := func(i int) *http.Client {
		mu.Lock()
		defer mu.Unlock()
		k := i / registrationsPerIP
		if clients[k] == nil {
			clients[k] = httpClient(registrationIP(second, i), 2)
		}
		return clients[k]
	}
	defer func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}()
	tokens := make([]string, n)
	password := randomHex(12)
	reg := func(ctx context.Context, i int) error {
		var out struct {
			Token string `json:"token"`
		}
		err := call(ctx, clientFor(i), http.MethodPost, f.path("auth/register"), "",
			map[string]string{"username": fmt.Sprintf("load%d", i), "password": password}, &out, http.StatusCreated)
		if err != nil {
			return fmt.Errorf("register user %d: %w", i, err)
		}
		tokens[i] = out.Token
		return nil
	}
	// The first user becomes the admin; the rest may go in parallel. The
	// server hashes every password with argon2id, so a few at a time is
	// all it can use.
	if err := reg(ctx, 0); err != nil {
		return nil, err
	}
	if err := parallel(ctx, n-1, 4, func(ctx context.Context, i int) error { return reg(ctx, i+1) }); err != nil {
		return nil, err
	}
	return tokens, nil
}

// parallel runs fn(0..n-1) with at most conc at once and returns the first
// error.
func parallel(ctx context.Context, n, conc int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	sem := make(chan struct{}, conc)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}
