package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"agora/store/pgtest"
)

// The template is left empty, so every test database starts unmigrated and
// the tests see "agora migrate up" do the real work.
func TestMain(m *testing.M) {
	// A test that needs a real, killable server process runs this very
	// binary as `agora serve` (see startProcess).
	if os.Getenv(childEnv) == "serve" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, []string{"serve"}, os.Getenv, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	pgtest.Main(m, func(context.Context, string, string) error { return nil })
}
