// Package migrations holds the schema as numbered SQL files, embedded so the
// binary can migrate a database with no files on disk.
package migrations

import "embed"

// FS holds every *.up.sql and *.down.sql file of this folder.
//
//go:embed *.sql
var FS embed.FS
