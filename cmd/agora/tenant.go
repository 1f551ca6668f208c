package main

import (
	"context"
	"fmt"

	"agora/store"
)

// tenant is `agora tenant create SLUG NAME`.
func (m *Main) tenant(ctx context.Context) error {
	args := m.args
	if len(args) != 3 || args[0] != "create" {
		return usageError("usage: agora tenant create SLUG NAME")
	}
	dbs, err := m.database(ctx)
	if err != nil {
		return err
	}
	url, err := dbs.servingURL()
	if err != nil {
		return err
	}
	if m.cfg.AutoMigrate {
		if err := store.MigrateUp(ctx, dbs.OwnerURL, url); err != nil {
			return err
		}
	}
	db, err := store.Open(ctx, store.Config{URL: url})
	if err != nil {
		return err
	}
	defer db.Close()
	t, err := db.CreateTenant(ctx, args[1], args[2])
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "tenant %s created (id %d)\n", t.Slug, t.ID)
	return nil
}
