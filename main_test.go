package main

import (
	"context"
	"testing"

	"agora/store/pgtest"
)

// The template is left empty, so every test database starts unmigrated and
// the tests see "agora migrate up" do the real work.
func TestMain(m *testing.M) {
	pgtest.Main(m, func(context.Context, string) error { return nil })
}
