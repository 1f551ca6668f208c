package main

import (
	"context"
	"path/filepath"

	"agora/store/devdb"
)

// databases are the two ways in: the serving role, which only has data
// rights, and the schema's owner, which migrates and grants them.
type databases struct {
	URL      string // DATABASE_URL; empty when only the owner's is known
	OwnerURL string // AGORA_MIGRATE_DATABASE_URL, else DATABASE_URL
}

// database returns the URLs to use, starting the private cluster when
// neither DATABASE_URL nor AGORA_MIGRATE_DATABASE_URL is set; stopping a
// cluster started here is registered as a shutdown step. With DATABASE_URL
// alone (the single-role layout), migrations run as that role too, and
// serve then needs AGORA_ALLOW_OWNER.
func (m *Main) database(ctx context.Context) (databases, error) {
	if m.cfg.DatabaseURL != "" || m.cfg.MigrateURL != "" {
		dbs := databases{URL: m.cfg.DatabaseURL, OwnerURL: m.cfg.MigrateURL}
		if dbs.OwnerURL == "" {
			dbs.OwnerURL = dbs.URL
		}
		return dbs, nil
	}
	dir, err := filepath.Abs(filepath.Join(m.cfg.DataDir, "pg"))
	if err != nil {
		return databases{}, err
	}
	m.log.Info().Str("dir", dir).Msg("no DATABASE_URL nor AGORA_MIGRATE_DATABASE_URL: starting the private PostgreSQL cluster")
	cl, err := devdb.Start(ctx, devdb.Options{Dir: dir, Log: m.log})
	if err != nil {
		return databases{}, err
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
	var dbs databases
	dbs.OwnerURL, dbs.URL, err = cl.EnsureApp(ctx, "agora_owner", "agora", "agora")
	return dbs, err
}

// servingURL is the serving role's URL, for the commands that need one.
func (dbs databases) servingURL() (string, error) {
	if dbs.URL == "" {
		return "", usageError("AGORA_MIGRATE_DATABASE_URL is set but DATABASE_URL is not: set DATABASE_URL to the serving role's URL")
	}
	return dbs.URL, nil
}
