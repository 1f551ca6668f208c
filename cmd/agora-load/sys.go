package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// raiseFileLimit lifts the soft open-files limit to the hard one: every
// subscriber is a socket.
func raiseFileLimit() {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	}
}

func fileLimit() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	return int(min(rl.Max, 1<<30))
}

// maxSubscribers leaves room for the tool's other files (HTTP clients,
// logs, the Go runtime).
func maxSubscribers() int { return max(fileLimit()-500, 1) }

// serverCPU is the CPU the servers are pinned to with --pin.
const serverCPU = 0

// pinSelf moves every thread of this process to the CPUs other than the
// servers' (new threads inherit it), so the load does not steal the
// measured server's core. With one CPU there is nothing to do.
func pinSelf(logw io.Writer) {
	n := runtime.NumCPU()
	if n < 2 {
		fmt.Fprintln(logw, "pin: one CPU only; the tool shares it with the server")
		return
	}
	var set unix.CPUSet
	for c := 0; c < n; c++ {
		if c != serverCPU {
			set.Set(c)
		}
	}
	setAffinity(&set)
}

// unpinSelf undoes pinSelf.
func unpinSelf() {
	var set unix.CPUSet
	for c := 0; c < runtime.NumCPU(); c++ {
		set.Set(c)
	}
	setAffinity(&set)
}

func setAffinity(set *unix.CPUSet) {
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			_ = unix.SchedSetaffinity(tid, set)
		}
	}
	runtime.GOMAXPROCS(set.Count())
}

// proc is a server subprocess this tool started. It is only ever stopped
// by its own PID.
type proc struct {
	name    string
	cmd     *exec.Cmd
	pid     int
	logPath string
	done    chan struct{}
	waitErr error
}

func startProc(name, pin, bin string, args, env []string, logPath string) (*proc, error) {
	argv := append([]string{bin}, args...)
	if pin != "" {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			return nil, fmt.Errorf("--pin needs taskset: %w", err)
		}
		// taskset execs the server, so the PID is the server's.
		argv = append([]string{ts, "-c", pin}, argv...)
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	// If this tool dies without cleaning up, the server goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, pid: cmd.Process.Pid, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill ends the process at once, as a crash would, and waits for it.
func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// stop sends SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s did not stop within %s: killed", p.name, grace)
}

// logTail is the end of the process's output, for error messages.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return strings.TrimSpace(string(b))
}

// userHZ is the unit of /proc/<pid>/stat times, fixed at 100 by the Linux
// ABI whatever the kernel's HZ.
const userHZ = 100

// procCPU is the user+system CPU time a process has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

func parseStatCPU(b []byte) (time.Duration, error) {
	return parseStatFields(b, false)
}

// parseStatFields is utime+stime, plus cutime+cstime (its reaped
// children's) when withChildren.
func parseStatFields(b []byte, withChildren bool) (time.Duration, error) {
	// The command name (field 2) may hold spaces and parentheses: fields
	// are counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime, stime, cutime and cstime are
	// fields 14 to 17.
	if len(f) < 15 {
		return 0, errors.New("short /proc stat")
	}
	n := 2
	if withChildren {
		n = 4
	}
	var sum int64
	for _, s := range f[11 : 11+n] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, errors.New("malformed /proc stat times")
		}
		sum += v
	}
	return time.Duration(sum) * time.Second / userHZ, nil
}

// procRSS is a process's resident set in KiB.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	return parseStatusRSS(b)
}

func parseStatusRSS(b []byte) (int64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// machineCPU reads /proc/stat's first line: busy and total time over all
// CPUs (iowait counts as idle).
func machineCPU() (busy, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, errors.New("malformed /proc/stat")
	}
	var sum, idle int64
	for i, s := range f[1:] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if i >= 8 { // guest time is already in user
			break
		}
		sum += v
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return time.Duration(sum-idle) * time.Second / userHZ, time.Duration(sum) * time.Second / userHZ, nil
}

// treeCPU is the CPU time of pid and its children, live or exited
// (PostgreSQL's postmaster and its backends: a backend that exited is in
// the postmaster's reaped-children times).
func treeCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	total, _ := parseStatFields(b, true)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			if c, err := parseStatCPU(b); err == nil {
				total += c
			}
		}
	}
	return total
}

// cpuSnap is a moment's CPU clocks: the machine's, the server's, this
// tool's and PostgreSQL's.
type cpuSnap struct {
	at                            time.Time
	busy, total, server, tool, pg time.Duration
	serverErr                     error
}

func snapCPU(serverPID, pgPID int) cpuSnap {
	s := cpuSnap{at: time.Now()}
	s.busy, s.total, _ = machineCPU()
	if serverPID > 0 {
		s.server, s.serverErr = procCPU(serverPID)
	} else {
		s.serverErr = errors.New("no server pid")
	}
	s.tool, _ = procCPU(os.Getpid())
	s.pg = treeCPU(pgPID)
	return s
}

// postmasterPID reads the cluster's postmaster.pid; 0 if unknown.
func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}
