package devdb

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type exitError = exec.ExitError

// osUser is the OS user the server programs run as when we are root.
type osUser struct {
	name     string
	uid, gid int
	groups   []uint32
	home     string
}

// serverUser returns the user to run the server programs as: nil (the
// current user) unless we are root, then the "postgres" user.
func serverUser() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("devdb: running as root, and PostgreSQL refuses to run as root, but there is no \"postgres\" OS user to run it as (create one with `useradd --system postgres`, which installing the postgresql package also does): %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("devdb: uid of user postgres: %w", err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("devdb: gid of user postgres: %w", err)
	}
	ou := &osUser{name: u.Username, uid: uid, gid: gid, home: u.HomeDir, groups: []uint32{uint32(gid)}}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil && !slices.Contains(ou.groups, uint32(g)) {
				ou.groups = append(ou.groups, uint32(g))
			}
		}
	}
	return ou, nil
}

// command returns a command running one of the server programs, as the
// server user, in its own process group (so that a Ctrl-C sent to the
// terminal's foreground group does not reach it), in Dir, with an
// environment free of libpq and locale variables.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	cmd.WaitDelay = 10 * time.Second
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "LC_") || k == "LANG" || k == "LANGUAGE" {
			continue
		}
		if c.runAs != nil && (k == "HOME" || k == "USER" || k == "LOGNAME") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C")
	attr := &syscall.SysProcAttr{Setpgid: true}
	if c.runAs != nil {
		env = append(env, "HOME="+c.runAs.home, "USER="+c.runAs.name, "LOGNAME="+c.runAs.name)
		attr.Credential = &syscall.Credential{
			Uid:    uint32(c.runAs.uid),
			Gid:    uint32(c.runAs.gid),
			Groups: c.runAs.groups,
		}
	}
	cmd.Env = env
	cmd.SysProcAttr = attr
	return cmd
}

// searchable reports whether u may traverse the directory described by fi.
func searchable(fi fs.FileInfo, u *osUser) bool {
	perm := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return perm&0o001 != 0
	}
	switch {
	case int(st.Uid) == u.uid:
		return perm&0o100 != 0
	case slices.Contains(u.groups, st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// ensureSearchable makes dir traversable (o+x, not readable) by u.
func ensureSearchable(dir string, u *osUser) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("devdb: %w", err)
	}
	if searchable(fi, u) {
		return nil
	}
	if err := os.Chmod(dir, fi.Mode().Perm()|0o001); err != nil {
		return fmt.Errorf("devdb: making %s traversable by %s: %w", dir, u.name, err)
	}
	return nil
}

// checkAncestorsSearchable checks that u can reach dir. Directories above
// dir are not ours to change: the error says what to do instead.
func checkAncestorsSearchable(dir string, u *osUser) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("devdb: %w", err)
		}
		if !searchable(fi, u) {
			return fmt.Errorf("devdb: running as root, PostgreSQL runs as OS user %s, which cannot reach %s because %s (mode %v) is not traversable by it: choose a Dir elsewhere (for example under %s) or run `chmod o+x %s`",
				u.name, dir, p, fi.Mode().Perm(), os.TempDir(), p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// removeStalePidFile removes a postmaster.pid whose process is gone or is no
// PostgreSQL server (its PID was reused, e.g. after a container restart).
// pg_ctl status would otherwise take such a file for a running server.
// Only done where /proc tells what a process is.
func (c *Cluster) removeStalePidFile() {
	pidFile := filepath.Join(c.dataDir, "postmaster.pid")
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return
	}
	if _, err := os.Stat("/proc/self/comm"); err != nil {
		return
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return
	default:
		name := strings.TrimSpace(string(comm))
		if name == "postgres" || name == "postmaster" {
			return
		}
	}
	if err := os.Remove(pidFile); err == nil {
		c.log.Warn().Int("pid", pid).Msg("devdb: removed stale postmaster.pid")
	}
}

// writeSecret writes a secret file readable only by the current user.
func writeSecret(path, secret string) error {
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("devdb: writing %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("devdb: %w", err)
	}
	return nil
}

// readOrCreateSecret returns the secret kept in path, creating it (safely
// against concurrent callers) if it does not exist yet.
func readOrCreateSecret(path string) (string, error) {
	for range 3 {
		data, err := os.ReadFile(path)
		if err == nil {
			if s := strings.TrimSpace(string(data)); s != "" {
				return s, nil
			}
			return "", fmt.Errorf("devdb: %s is empty: remove it to have a new password generated", path)
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("devdb: %w", err)
		}
		secret := rand.Text()
		tmp := path + ".tmp-" + rand.Text()[:8]
		if err := writeSecret(tmp, secret); err != nil {
			return "", err
		}
		err = os.Link(tmp, path) // fails if another caller got there first
		os.Remove(tmp)
		if err == nil {
			return secret, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("devdb: creating %s: %w", path, err)
		}
	}
	return "", fmt.Errorf("devdb: could not create or read %s", path)
}

// secretFileName is the name of the file in Dir keeping role's password.
func secretFileName(role string) string {
	plain := !strings.HasPrefix(role, ".")
	for _, r := range role {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			plain = false
			break
		}
	}
	if plain {
		return role + ".secret"
	}
	return "@" + hex.EncodeToString([]byte(role)) + ".secret"
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logTail returns the last lines of the server log.
func logTail(path string) string {
	return logTailFrom(path, 0)
}

// logTailFrom returns the last lines of the server log written after offset.
func logTailFrom(path string, offset int64) string {
	const maxBytes, maxLines = 8 << 10, 40
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	size := fileSize(path)
	offset = max(offset, size-maxBytes, 0)
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	data, _ := io.ReadAll(io.LimitReader(f, maxBytes))
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	if len(lines) == 1 && len(lines[0]) == 0 {
		return "(log is empty)"
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// FindBinDir returns the directory holding the PostgreSQL server programs
// (initdb, pg_ctl, postgres): the one of initdb on PATH, else the newest
// /usr/lib/postgresql/*/bin (Debian/Ubuntu), else the newest Homebrew
// postgresql@N.
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if dir := filepath.Dir(p); hasServerBins(dir) {
			return dir, nil
		}
	}
	for _, pattern := range []string{
		"/usr/lib/postgresql/*/bin",
		"/opt/homebrew/opt/postgresql@*/bin",
		"/usr/local/opt/postgresql@*/bin",
	} {
		dirs, _ := filepath.Glob(pattern)
		slices.SortFunc(dirs, func(a, b string) int { return compareVersions(b, a) })
		for _, dir := range dirs {
			if hasServerBins(dir) {
				return dir, nil
			}
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin: install them with `apt-get install -y postgresql` (Debian/Ubuntu) or `brew install postgresql@15` (macOS), or set DATABASE_URL to use an existing server")
}

func hasServerBins(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// compareVersions compares the version in two paths like
// /usr/lib/postgresql/9.6/bin and /usr/lib/postgresql/15/bin numerically.
func compareVersions(a, b string) int {
	va, vb := versionOf(a), versionOf(b)
	if c := slices.Compare(va, vb); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func versionOf(binDir string) []int {
	v := filepath.Base(filepath.Dir(binDir))
	if _, after, ok := strings.Cut(v, "@"); ok {
		v = after
	}
	var out []int
	for _, part := range strings.Split(v, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			break
		}
		out = append(out, n)
	}
	return out
}
