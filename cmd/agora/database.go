package main

import (
	"context"
	"path/filepath"

	"agora/store/devdb"
)

// database returns the URL to use, starting the private cluster when no
// DATABASE_URL is set; stopping a cluster started here is registered as a
// shutdown step.
func (m *Main) database(ctx context.Context) (string, error) {
	if m.cfg.DatabaseURL != "" {
		return m.cfg.DatabaseURL, nil
	}
	dir, err := filepath.Abs(filepath.Join(m.cfg.DataDir, "pg"))
	if err != nil {
		return "", err
	}
	m.log.Info().Str("dir", dir).Msg("no DATABASE_URL: starting the private PostgreSQL cluster")
	cl, err := devdb.Start(ctx, devdb.Options{Dir: dir, Log: m.log})
	if err != nil {
		return "", err
	}
	if cl.StartedHere() {
		// Another agora process that runs it (say, `task up`) keeps it.
		m.onClose(func(ctx context.Context) error {
			if err := cl.Stop(ctx); err != nil {
				m.log.Error().Err(err).Msg("stop private PostgreSQL")
				return err
			}
			return nil
		})
	}
	return cl.EnsureApp(ctx, "agora", "agora")
}
