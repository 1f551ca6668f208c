// Command agora-load measures Agora's realtime fan-out and write path on
// this machine: N WebSocket subscribers over R rooms, W writers posting
// comments through REST at a fixed total rate, and the figures that
// matter for capacity planning (connect time, end-to-end latency, lost
// and duplicated events, memory per connection, CPU per delivery). With
// --baseline it measures a bare melody broadcast server the same way, in
// the same run, and prints Agora's figures as ratios to it.
//
// By default it starts its own `agora serve` (from --server-bin) with a
// private PostgreSQL cluster in a temporary directory; --url targets a
// running server instead. It only ever talks to 127.0.0.0/8, and every
// run is bounded in time and count.
//
//	agora-load [flags]          one scenario (see -h)
//	agora-load --db [flags]     REST write throughput vs pgbench on the same cluster
//	agora-load bench [flags]    the standard matrix, written to BENCHMARKS.md
//	agora-load reaction-burst   a burst of reactions on one comment (see -h)
//	agora-load tenants [flags]  one tenant's write flood against another's latency
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

type usageError string

func (e usageError) Error() string { return string(e) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "agora-load:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case bareServerFlag, "-bare-server":
			return bareServerMain(ctx, args[1:], stderr)
		case "bench":
			return benchMain(ctx, args[1:], stdout, stderr)
		case "reaction-burst":
			return reactionBurstMain(ctx, args[1:], stdout, stderr)
		case "tenants":
			return tenantsMain(ctx, args[1:], stdout, stderr)
		}
	}
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	o.Label = "run"
	raiseFileLimit()
	if o.ToolProfile != "" {
		f, err := os.Create(o.ToolProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	rep, err := runOne(ctx, o, stderr)
	if rep != nil {
		if o.JSON {
			if jerr := writeJSON(stdout, rep); jerr != nil && err == nil {
				err = jerr
			}
		} else {
			printReport(stdout, rep)
		}
	}
	if err == nil && rep != nil && rep.failed() {
		err = errors.New("lost or duplicated events, subscribers dropped or writes failed: see the report")
	}
	return err
}

// runOne runs one scenario or the DB comparison, in an environment of its
// own (temporary directory and private cluster) unless --url is given.
func runOne(ctx context.Context, o options, logw io.Writer) (*Report, error) {
	var e *env
	if o.URL == "" {
		var err error
		if e, err = newEnv(ctx, logw); err != nil {
			return nil, err
		}
		defer e.close(logw)
	}
	// Pin the tool itself only after the cluster is up: PostgreSQL's
	// processes inherit the affinity of whoever forks them, and should
	// float over every core.
	if o.Pin {
		pinSelf(logw)
	}
	switch {
	case o.DB:
		return runDB(ctx, o, e, logw)
	case o.JoinStorm != "":
		return runJoinStorm(ctx, o, e, logw)
	case o.Reconnect:
		return runReconnectStorm(ctx, o, e, logw)
	case o.Idle:
		return runIdle(ctx, o, e, logw)
	}
	return runScenario(ctx, o, e, logw)
}
