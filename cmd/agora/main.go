// Command agora is the Agora server: a multi-tenant real-time forum backend.
//
//	agora serve                       serve REST, WebSocket and the web UI
//	agora migrate up|down [N]|version|create NAME
//	agora tenant create SLUG NAME
//
// Configuration comes from flags and AGORA_* environment variables; see
// README.md. With neither DATABASE_URL nor AGORA_MIGRATE_DATABASE_URL, a
// private PostgreSQL cluster is started under .agora/ (or AGORA_DATA_DIR).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

const usage = `usage:
  agora serve [flags]
  agora migrate up | down [N] | version | create NAME
  agora tenant create SLUG NAME
Run "agora serve -h" for the flags; every flag also reads an environment variable.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, err)
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "agora:", err)
		os.Exit(1)
	}
}

// run is the whole program: parse, run, close.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	m := &Main{Getenv: getenv, Stdout: stdout, Stderr: stderr}
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	err := m.Run(ctx)
	return errors.Join(err, m.Close())
}

// Main is the agora program. ParseFlags reads the command line and the
// environment, Run carries out the subcommand until it is done or ctx ends,
// and Close undoes what Run set up, in reverse order.
type Main struct {
	Getenv func(string) string
	Stdout io.Writer
	Stderr io.Writer

	cmd  string
	args []string
	cfg  config
	log  zerolog.Logger

	// closers are the shutdown steps in the order their resources were
	// set up; each is registered once, where it was set up.
	closers []func(context.Context) error
}

// ParseFlags reads the subcommand, its flags and the environment.
func (m *Main) ParseFlags(args []string) error {
	if len(args) == 0 {
		return usageError("missing command")
	}
	m.cmd = args[0]
	cfg, rest, err := parseConfig(m.cmd, args[1:], m.Getenv, m.Stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, m.Stderr)
	if err != nil {
		return err
	}
	m.cfg, m.args, m.log = cfg, rest, log
	return nil
}

// Run carries out the subcommand.
func (m *Main) Run(ctx context.Context) error {
	switch m.cmd {
	case "serve":
		if len(m.args) > 0 {
			return usageError("serve takes no arguments")
		}
		return m.serve(ctx)
	case "migrate":
		return m.migrate(ctx)
	case "tenant":
		return m.tenant(ctx)
	}
	return usageError(fmt.Sprintf("unknown command %q", m.cmd))
}

// onClose registers one shutdown step.
func (m *Main) onClose(fn func(context.Context) error) { m.closers = append(m.closers, fn) }

// Close runs the shutdown steps newest first, all within one deadline, and
// forgets them, so a second Close does nothing.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var errs []error
	for i := len(m.closers) - 1; i >= 0; i-- {
		errs = append(errs, m.closers[i](ctx))
	}
	m.closers = nil
	return errors.Join(errs...)
}
