package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// paced keeps its schedule while earlier requests hang: B's latency must
// show queueing, not hide it by sending less.
func TestPacedIsOpenLoop(t *testing.T) {
	const n = 20
	gate := make(chan struct{})
	var started atomic.Int32
	timedOut := false
	samples := paced(context.Background(), 200, n*5*time.Millisecond, func(_ context.Context, i int) (time.Duration, error) {
		if started.Add(1) == n {
			close(gate)
		}
		if i == 0 {
			select {
			case <-gate:
			case <-time.After(10 * time.Second):
				timedOut = true
			}
		}
		return time.Millisecond, nil
	})
	if timedOut {
		t.Fatal("the later requests waited for the first one")
	}
	if len(samples) != n {
		t.Fatalf("%d samples, want %d", len(samples), n)
	}
	for _, s := range samples {
		if s.at%(5*time.Millisecond) != 0 || s.at >= n*5*time.Millisecond {
			t.Errorf("a request scheduled at %v, want a multiple of 5 ms under 100 ms", s.at)
		}
	}
}

// The section's verdict is the median of the rounds' ratios against 1.5x,
// with their spread, and it survives the bench's results.json.
func TestTenantsReport(t *testing.T) {
	tr := &TenantsReport{Command: "cmd-tenants", Options: defaultTenantsOptions(),
		Phases: []TenantsPhase{
			{Round: 1, Kind: "alone", B: Latency{P50: 4, P95: 8, P99: 10}},
			{Round: 1, Kind: "flood", B: Latency{P50: 5, P95: 9, P99: 12}, ASeconds: 12, AOK: 3400, ARefused: map[string]int{"HTTP 429": 8600}},
		},
		Ratios: []float64{1.2, 1.6, 1.4}, NoQuotaRatios: []float64{9, 7, 8}}
	var b bytes.Buffer
	writeTenants(&b, tr)
	for _, want := range []string{"| 1 | flood | 5.0 / 9.0 / 12.0 |", "| 283 | HTTP 429: 8600 |",
		"| ≤ 1.5× | 1.40× (1.20× to 1.60×) | **met** |", "| 8.00× (7.00× to 9.00×) |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the section lacks %q:\n%s", want, b.String())
		}
	}
	tr.Ratios = []float64{1.6, 1.4, 1.7}
	b.Reset()
	writeTenants(&b, tr)
	if !strings.Contains(b.String(), "1.60× (1.40× to 1.70×) | **missed** |") {
		t.Errorf("a median of 1.6 is not missed:\n%s", b.String())
	}

	runs := []benchRun{{c: benchCase{label: "tenants"}, rep: &Report{Tenants: tr}}}
	raw, err := json.Marshal(saveRuns(machineInfo{}, runs))
	if err != nil {
		t.Fatal(err)
	}
	var saved savedBench
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	writeTenantsRuns(&again, []benchRun{{c: benchCase{label: "tenants"}, rep: saved.Runs[0].Report}})
	if again.String() != b.String() {
		t.Errorf("the saved run renders another section:\n%s\nwant:\n%s", again.String(), b.String())
	}
}
