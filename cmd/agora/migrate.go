package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"agora/store"
)

// migrate is `agora migrate up | down [N] | version | create NAME`.
func (m *Main) migrate(ctx context.Context) error {
	args := m.args
	if len(args) == 0 {
		return usageError("migrate needs up, down [N], version or create NAME")
	}
	if args[0] == "create" {
		if len(args) != 2 {
			return usageError("migrate create takes one NAME")
		}
		return createMigration("migrations", args[1], m.Stdout)
	}
	dbs, err := m.database(ctx)
	if err != nil {
		return err
	}
	if dbs.URL == "" && args[0] == "up" {
		m.log.Warn().Msg("DATABASE_URL is not set: migrating without granting a serving role its rights")
	}
	mg, err := store.NewMigrator(dbs.OwnerURL, dbs.URL)
	if err != nil {
		return err
	}
	defer mg.Close()
	switch {
	case args[0] == "up" && len(args) == 1:
		err = mg.Up(ctx)
	case args[0] == "down" && len(args) <= 2:
		n := 0 // all
		if len(args) == 2 {
			if n, err = strconv.Atoi(args[1]); err != nil || n < 1 {
				return usageError("migrate down N: N must be a positive number")
			}
		}
		err = mg.Down(n)
	case args[0] == "version" && len(args) == 1:
	default:
		return usageError(fmt.Sprintf("migrate %s: unknown form", strings.Join(args, " ")))
	}
	if err != nil {
		return fmt.Errorf("migrate %s: %w", args[0], err)
	}
	v, dirty, err := mg.Version()
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "schema version %d", v)
	if dirty {
		fmt.Fprint(m.Stdout, " (dirty: a migration failed halfway; fix it and force the version)")
	}
	fmt.Fprintln(m.Stdout)
	return nil
}

var migrationFile = regexp.MustCompile(`^(\d+)_.*\.(up|down)\.sql$`)

// createMigration writes the next numbered pair of empty migration files.
func createMigration(dir, name string, stdout io.Writer) error {
	stem := store.MigrationName(name)
	if stem == "" {
		return usageError("migration NAME needs letters or digits")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read %s (run this from the repository root): %w", dir, err)
	}
	next := 1
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		if mm := migrationFile.FindStringSubmatch(n); mm != nil {
			if v, _ := strconv.Atoi(mm[1]); v >= next {
				next = v + 1
			}
		}
	}
	for _, direction := range []string{"up", "down"} {
		path := filepath.Join(dir, fmt.Sprintf("%04d_%s.%s.sql", next, stem, direction))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		fmt.Fprintf(f, "-- %s (%s)\n", name, direction)
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, path)
	}
	return nil
}
