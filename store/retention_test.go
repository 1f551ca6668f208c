package store

import (
	"testing"
	"time"
)

// TestPrunerDefaults pins the history window API.md promises for resume.
func TestPrunerDefaults(t *testing.T) {
	var p Pruner
	p.defaults()
	if p.Retention.PerRoom != 10000 || p.Retention.MaxAge != 7*24*time.Hour || p.Interval != time.Minute {
		t.Fatalf("defaults = %+v", p)
	}
}
