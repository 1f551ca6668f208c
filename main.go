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
	"os"
	"os/signal"
	"syscall"
)

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
