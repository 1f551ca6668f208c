package main

import (
	"fmt"
	"io"
)

// Targets from issue 12 (scale and cost), each against a baseline
// measured in the same run.
const (
	targetStormKB    = 5.0 // presence KB per client, 1,500 joining at once
	targetStormRatio = 2.2 // 3,000 joining cost / 1,500
)

func writeTargets12(w io.Writer, runs []benchRun, micro string) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## Targets (issue 12)\n\n| Target | Threshold | Measured | Result |\n|---|---|---|---|\n")
	if r := find(runs, "join-storm"); r != nil && r.JoinStorm != nil && len(r.JoinStorm.Pairs) > 0 {
		js := r.JoinStorm
		kb, kbLo, kbHi := js.stat(func(p StormPair) float64 { return p.Small.KBPerClient })
		st, _, _ := js.stat(func(p StormPair) float64 { return p.Small.StateKBPerClient })
		kbL, _, _ := js.stat(func(p StormPair) float64 { return p.Large.KBPerClient })
		rt, rtLo, rtHi := js.stat(func(p StormPair) float64 { return p.BytesRatio })
		cpu, cpuLo, cpuHi := js.stat(func(p StormPair) float64 { return p.CPURatio })
		join, _, _ := js.stat(func(p StormPair) float64 { return p.Small.JoinSeconds })
		p("| Presence traffic per client, %d distinct users joining one room at once | ≤ %.0f KB | %.2f KB (%.2f to %.2f over %d pairs), of which the first state %.2f KB; they joined in %.2f s | %s, by %+.2f KB |\n",
			js.Sizes[0], targetStormKB, kb, kbLo, kbHi, len(js.Pairs), st, join, verdict(kb <= targetStormKB), kb-targetStormKB)
		p("| Presence traffic of the room, %d joining / %d joining, interleaved pairs | ≤ %.1f× | %.2f× (%.2f to %.2f); %.2f KB per client at %d; server CPU %.2f× (%.2f to %.2f) | %s |\n",
			js.Sizes[1], js.Sizes[0], targetStormRatio, rt, rtLo, rtHi, kbL, js.Sizes[1], cpu, cpuLo, cpuHi, verdict(rt <= targetStormRatio))
	}
	p("\n")
}
