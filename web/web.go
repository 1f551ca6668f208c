// Package web serves Agora's forum UI: plain HTML, CSS and JavaScript
// modules embedded in the binary, with no build step.
//
// Paths:
//
//	/                     the app shell (a landing page that asks for a community)
//	/t/{tenant}/...       the app shell; the client routes with the History API
//	/static/{file}        assets at a stable URL, revalidated on every use (ETag)
//	/static/{version}/... the same assets under a content-hashed prefix, cached
//	                      for a year: index.html loads these, so a new binary is
//	                      picked up by the next page load and never mixed with
//	                      modules of the old one
//
// Everything else is 404. The app shell carries a strict Content-Security-Policy:
// no inline script or style, connections only to this origin (HTTP and
// WebSocket).
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed static
var files embed.FS

// CSP is the Content-Security-Policy of every response of the handler.
// 'self' in connect-src covers same-origin fetch; ws: and wss: are spelled
// out because browsers before CSP Level 3 do not map 'self' to WebSocket
// schemes.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// versionPlaceholder in index.html becomes the asset version.
const versionPlaceholder = "{{version}}"

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
	".txt":  "text/plain; charset=utf-8",
}

type asset struct {
	body  []byte
	ctype string
	etag  string
}

type handler struct {
	version string
	assets  map[string]asset // by path below static/, e.g. "agora.js"
	shell   asset
}

// Handler serves the UI. It reads the embedded files once; it is safe for
// concurrent use.
func Handler() http.Handler {
	h, err := newHandler(files)
	if err != nil {
		// The files are compiled in: failing here is a build defect.
		panic("web: " + err.Error())
	}
	return h
}

func newHandler(fsys fs.FS) (*handler, error) {
	h := &handler{assets: map[string]asset{}}
	var names []string
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		h.assets[name] = newAsset(name, body)
		names = append(names, name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The version covers every file, so one changed module changes every
	// versioned URL: relative imports stay within one consistent set.
	sort.Strings(names)
	sum := sha256.New()
	for _, n := range names {
		sum.Write([]byte(n))
		sum.Write([]byte{0})
		sum.Write(h.assets[n].body)
	}
	h.version = hex.EncodeToString(sum.Sum(nil))[:12]
	index, ok := h.assets["index.html"]
	if !ok {
		return nil, fs.ErrNotExist
	}
	h.shell = newAsset("index.html", bytes.ReplaceAll(index.body, []byte(versionPlaceholder), []byte(h.version)))
	return h, nil
}

func newAsset(name string, body []byte) asset {
	sum := sha256.Sum256(body)
	ctype, ok := contentTypes[path.Ext(name)]
	if !ok {
		ctype = "application/octet-stream"
	}
	return asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", CSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/" || p == "/index.html" || p == "/t" || strings.HasPrefix(p, "/t/"):
		// The shell names the current asset version, so it must never be
		// served from a cache without asking.
		h.serve(w, r, h.shell, "no-cache")
	case strings.HasPrefix(p, "/static/"):
		h.serveStatic(w, r, strings.TrimPrefix(p, "/static/"))
	case p == "/favicon.ico":
		h.serveAsset(w, r, "favicon.svg", "public, max-age=86400")
	case strings.HasPrefix(p, "/api/"):
		// Unknown API paths fall through the router to here; answer in the
		// API's error envelope, not with HTML.
		hdr.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no such endpoint"}}` + "\n"))
	default:
		http.NotFound(w, r)
	}
}

func (h *handler) serveStatic(w http.ResponseWriter, r *http.Request, rest string) {
	ver, name, versioned := strings.Cut(rest, "/")
	if !versioned || !isVersion(ver) {
		h.serveAsset(w, r, rest, "no-cache")
		return
	}
	// An older version (a page loaded before a deploy) still gets the
	// current file, but not for long: its URL will never change again.
	cache := "public, max-age=31536000, immutable"
	if ver != h.version {
		cache = "no-cache"
	}
	h.serveAsset(w, r, name, cache)
}

func isVersion(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (h *handler) serveAsset(w http.ResponseWriter, r *http.Request, name, cache string) {
	a, ok := h.assets[name]
	if !ok || name == "index.html" {
		http.NotFound(w, r)
		return
	}
	h.serve(w, r, a, cache)
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, a asset, cache string) {
	hdr := w.Header()
	hdr.Set("Content-Type", a.ctype)
	hdr.Set("Cache-Control", cache)
	hdr.Set("ETag", a.etag)
	if etagMatches(r.Header.Get("If-None-Match"), a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.body)
	}
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
