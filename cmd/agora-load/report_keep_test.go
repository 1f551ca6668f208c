package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// task bench rewrites its own report and keeps the sections that other
// tasks measured (search, tenant quotas, ...) below the marker.
func TestReportKeepsOtherTasksSections(t *testing.T) {
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	kept := keptMarker + "\n\n## Search (`task bench:search`)\n\np50 5 ms\n"
	if err := os.WriteFile(out, []byte("# old report\n\nstale figures\n\n"+kept), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeReport(out, machineInfo{}, nil, "", "", io.Discard); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	if strings.Contains(got, "stale figures") {
		t.Error("the old report's own part survived")
	}
	if !strings.HasSuffix(got, kept) {
		t.Errorf("the kept sections are gone or changed:\n%s", got)
	}
}
