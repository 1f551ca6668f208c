// Command task is what `go tool task` runs: Task, the runner of
// Taskfile.yml, pinned in cmd/task/task.mod so that neither it nor its
// dependencies are part of Agora's go.mod, in a process group of its own.
//
// The group is the point. Task answers a SIGINT or SIGTERM only by noting
// it and waiting for the commands it started, and `go tool` hands the
// signal to Task alone, so a SIGTERM sent to `go tool task up` used to
// leave the server and its private PostgreSQL running. Here a signal is
// passed on to the whole group, the server among it, which then shuts
// down as it does on SIGTERM (stopping the private cluster it started).
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "go tool task:", err)
	}
	os.Exit(code)
}

func run(args []string) (int, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return 1, fmt.Errorf("find the module root: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd := exec.Command("go", append([]string{"tool", "-modfile=" + filepath.Join(root, "cmd", "task", "task.mod"), "task"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 1, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var last time.Time
	for {
		select {
		case sig := <-sigs:
			// A Ctrl-C reaches this process twice (from the terminal and
			// through `go tool`); Task gives up waiting on its third
			// signal, so pass on at most one a second.
			if time.Since(last) < time.Second {
				continue
			}
			last = time.Now()
			_ = syscall.Kill(-cmd.Process.Pid, sig.(syscall.Signal))
		case err := <-done:
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return exit.ExitCode(), nil
			}
			if err != nil {
				return 1, err
			}
			return 0, nil
		}
	}
}
