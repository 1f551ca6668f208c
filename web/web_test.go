package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestShellForEveryAppPath(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/", "/index.html", "/t/demo", "/t/demo/", "/t/demo/b/1", "/t/demo/p/42", "/t/demo/login?next=/t/demo/p/1", "/t/demo/mod/audit", "/t/demo/mod/members"} {
		rec := get(t, h, p)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", p, rec.Code)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", p, ct)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", p, cc)
		}
		body := rec.Body.String()
		if !strings.Contains(body, `<main id="main"`) || strings.Contains(body, versionPlaceholder) {
			t.Errorf("GET %s: not the app shell with its version filled in", p)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/", "/t/demo/p/1", "/static/agora.js", "/nope"} {
		rec := get(t, h, p)
		hdr := rec.Header()
		csp := hdr.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "connect-src 'self' ws: wss:", "object-src 'none'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", p, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP allows inline or eval: %q", p, csp)
		}
		if hdr.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", p)
		}
		if hdr.Get("Referrer-Policy") == "" {
			t.Errorf("GET %s: no Referrer-Policy", p)
		}
	}
}

func TestStaticAssets(t *testing.T) {
	h, err := newHandler(files)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"agora.js":      "text/javascript; charset=utf-8",
		"app.css":       "text/css; charset=utf-8",
		"favicon.svg":   "image/svg+xml",
		"pages/post.js": "text/javascript; charset=utf-8",
		"components.js": "text/javascript; charset=utf-8",
	}
	for name, ctype := range cases {
		// Stable URL: revalidated on every use.
		rec := get(t, h, "/static/"+name)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != ctype {
			t.Fatalf("GET /static/%s: %d %q", name, rec.Code, rec.Header().Get("Content-Type"))
		}
		if rec.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("/static/%s: Cache-Control %q", name, rec.Header().Get("Cache-Control"))
		}
		etag := rec.Header().Get("ETag")
		if etag == "" {
			t.Fatalf("/static/%s: no ETag", name)
		}
		if rec := get(t, h, "/static/"+name, "If-None-Match", etag); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
			t.Errorf("/static/%s with its ETag: %d, %d bytes", name, rec.Code, rec.Body.Len())
		}
		// Versioned URL: immutable.
		rec = get(t, h, "/static/"+h.version+"/"+name)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Cache-Control"), "immutable") {
			t.Errorf("versioned %s: %d %q", name, rec.Code, rec.Header().Get("Cache-Control"))
		}
		// A page from before a deploy still gets the file, not for keeps.
		rec = get(t, h, "/static/0123456789ab/"+name)
		if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("old version of %s: %d %q", name, rec.Code, rec.Header().Get("Cache-Control"))
		}
	}
}

func TestShellLoadsTheCurrentVersion(t *testing.T) {
	h, err := newHandler(files)
	if err != nil {
		t.Fatal(err)
	}
	body := get(t, h, "/").Body.String()
	refs := regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllStringSubmatch(body, -1)
	if len(refs) < 3 {
		t.Fatalf("the shell references %d assets: %s", len(refs), body)
	}
	for _, m := range refs {
		if !strings.HasPrefix(m[1], "/static/"+h.version+"/") {
			t.Errorf("%s is not under the current version %s", m[1], h.version)
		}
		if rec := get(t, h, m[1]); rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d", m[1], rec.Code)
		}
	}
}

func TestNotFound(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/static/nope.js", "/static/index.html", "/static/../web.go", "/wp-login.php", "/tx"} {
		if rec := get(t, h, p); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, rec.Code)
		}
	}
	rec := get(t, h, "/api/v1/nope")
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"code":"not_found"`) ||
		rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("unknown API path: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", rec.Code)
	}
}

// The UI renders user content as text. Any HTML sink in the scripts is a
// likely XSS: keep them out entirely, but for the one that reads the
// server's sanitised body_html (dom.js, serverHTML).
func TestNoHTMLSinksInScripts(t *testing.T) {
	sinks := regexp.MustCompile(`\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\(|createContextualFragment|DOMParser|parseFromString`)
	allowed := map[string]string{"static/dom.js": `const doc = new DOMParser().parseFromString(String(html ?? ""), "text/html");`}
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if sinks.MatchString(line) && strings.TrimSpace(line) != allowed[p] {
				t.Errorf("%s:%d: HTML sink: %s", p, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// No inline script or style in the shell: the CSP would block them.
	index, _ := fs.ReadFile(files, "static/index.html")
	if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=`).Match(index) {
		t.Error("index.html has inline script, style or event handlers")
	}
}
