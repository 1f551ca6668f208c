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
	// A reconnect storm's History queries, at most this many per room
	// (O(rooms)): open the room, fill its recent events, check it, and
	// a little slack for the live writes during the storm.
	targetQueriesPerRoom = 5.0
	targetIdleRatio      = 1.15 // KB per idle connection / bare melody's
	targetConnectRatio   = 2.0  // time to connect 10,000 / bare melody's
	targetSatCPURatio    = 0.6  // CPU per delivery at saturation / bare melody's
	targetP99Ratio       = 1.25 // e2e p99 at 5 comments/s / bare melody's
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
	if r := find(runs, "n10k-r1-sat"); r != nil && r.Agora != nil && r.Baseline != nil {
		cr, lo, hi, n := r.pairStat(func(p ScenarioPair) float64 { return ratio(p.Agora.CPUPerMDeliveries, p.Baseline.CPUPerMDeliveries) })
		ca, _, _, _ := r.pairStat(func(p ScenarioPair) float64 { return p.Agora.CPUPerMDeliveries })
		cb, _, _, _ := r.pairStat(func(p ScenarioPair) float64 { return p.Baseline.CPUPerMDeliveries })
		mpf, mLo, mHi, _ := r.pairStat(func(p ScenarioPair) float64 { return ratio(float64(p.Agora.Messages), float64(p.Agora.Frames)) })
		wr, _, _, _ := r.pairStat(func(p ScenarioPair) float64 { return p.Agora.WriteRate })
		wb, _, _, _ := r.pairStat(func(p ScenarioPair) float64 { return p.Baseline.WriteRate })
		p("| CPU per delivery at saturation, %d in one room, %.0f comments/s offered, server on one core, against bare melody | ≤ %.1f× | %.2f× (%.2f to %.2f over %d pairs): %.2f vs %.2f CPU-s per million; %.2f messages per frame (%.2f to %.2f); writes achieved %.1f/s (bare melody's publish path %.1f/s) | %s, by %+.2f× |\n",
			r.Options.Subscribers, r.Options.Rate, targetSatCPURatio, cr, lo, hi, n, ca, cb, mpf, mLo, mHi, wr, wb, verdict(cr <= targetSatCPURatio), cr-targetSatCPURatio)
	}
	if r := find(runs, "n10k-r1-5"); r != nil && r.Agora != nil && r.Baseline != nil {
		pr, lo, hi, n := r.pairStat(func(p ScenarioPair) float64 { return ratio(p.Agora.E2E.P99, p.Baseline.E2E.P99) })
		pa, _, _, _ := r.pairStat(func(p ScenarioPair) float64 { return p.Agora.E2E.P99 })
		pb, _, _, _ := r.pairStat(func(p ScenarioPair) float64 { return p.Baseline.E2E.P99 })
		p("| End-to-end p99 at %.0f comments/s, %d in one room, against bare melody (packing must not make it worse) | ≤ %.2f× | %.2f× (%.2f to %.2f over %d pairs): %.1f ms vs %.1f ms | %s |\n",
			r.Options.Rate, r.Options.Subscribers, targetP99Ratio, pr, lo, hi, n, pa, pb, verdict(pr <= targetP99Ratio))
	}
	if r := find(runs, "idle"); r != nil && r.Idle != nil && len(r.Idle.Pairs) > 0 {
		id := r.Idle
		kr, krLo, krHi := id.stat(func(p IdlePair) float64 { return ratio(p.Agora.KBPerConn, p.Bare.KBPerConn) })
		ka, _, _ := id.stat(func(p IdlePair) float64 { return p.Agora.KBPerConn })
		kb, _, _ := id.stat(func(p IdlePair) float64 { return p.Bare.KBPerConn })
		ha, _, _ := id.stat(func(p IdlePair) float64 { return p.Agora.HeapKBPerConn })
		sa, _, _ := id.stat(func(p IdlePair) float64 { return p.Agora.StackKBPerConn })
		hb, _, _ := id.stat(func(p IdlePair) float64 { return p.Bare.HeapKBPerConn })
		sb, _, _ := id.stat(func(p IdlePair) float64 { return p.Bare.StackKBPerConn })
		p("| Idle KB per connection, N=%d, against bare melody (queue 16) | ≤ %.2f× | %.2f× (%.2f to %.2f over %d pairs): %.1f KB (heap %.1f, stacks %.1f) vs %.1f KB (heap %.1f, stacks %.1f) | %s |\n",
			id.Subscribers, targetIdleRatio, kr, krLo, krHi, len(id.Pairs), ka, ha, sa, kb, hb, sb, verdict(kr <= targetIdleRatio))
		cr, crLo, crHi := id.stat(func(p IdlePair) float64 { return ratio(p.Agora.ConnectSeconds, p.Bare.ConnectSeconds) })
		ca, _, _ := id.stat(func(p IdlePair) float64 { return p.Agora.ConnectSeconds })
		cb, _, _ := id.stat(func(p IdlePair) float64 { return p.Bare.ConnectSeconds })
		p("| Time to connect (and subscribe) %d, against bare melody | ≤ %.1f× | %.2f× (%.2f to %.2f): %.2f s vs %.2f s | %s, by %+.2f× |\n",
			id.Subscribers, targetConnectRatio, cr, crLo, crHi, ca, cb, verdict(cr <= targetConnectRatio), cr-targetConnectRatio)
	}
	if r := find(runs, "reconnect"); r != nil && r.Reconnect != nil && len(r.Reconnect.Pairs) > 0 {
		rs := r.Reconnect
		o := r.Options
		q, qLo, qHi := rs.stat(func(p ReconnectPair) float64 { return p.Memory.QueriesPerResume })
		qb, _, _ := rs.stat(func(p ReconnectPair) float64 { return p.NoMemory.QueriesPerResume })
		perRoom := q * float64(o.Subscribers) / float64(o.Rooms)
		live, liveLo, liveHi := rs.stat(func(p ReconnectPair) float64 { return p.Memory.LiveSeconds })
		liveB, _, _ := rs.stat(func(p ReconnectPair) float64 { return p.NoMemory.LiveSeconds })
		lr, lrLo, lrHi := rs.stat(func(p ReconnectPair) float64 { return ratio(p.Memory.LiveSeconds, p.NoMemory.LiveSeconds) })
		var bad int64
		for _, p := range rs.Pairs {
			for _, x := range []ReconnectResult{p.Memory, p.NoMemory} {
				bad += x.Lost + x.Duplicated + x.SeqGaps + int64(x.Failed)
			}
		}
		p("| Reconnect storm, %d subscribers over %d rooms resuming at once with since: History queries | O(rooms): ≤ %.0f per room | %.3f per resume (%.3f to %.3f over %d pairs) = %.1f per room; without recent events in memory %.3f per resume | %s |\n",
			o.Subscribers, o.Rooms, targetQueriesPerRoom, q, qLo, qHi, len(rs.Pairs), perRoom, qb, verdict(perRoom <= targetQueriesPerRoom))
		p("| Reconnect storm: time until the last client is live | (reported) | %.2f s (%.2f to %.2f); without recent events in memory %.2f s: %.2f× (%.2f to %.2f) | - |\n",
			live, liveLo, liveHi, liveB, lr, lrLo, lrHi)
		p("| Reconnect storm: lost, duplicated, seq gaps, failed resumes | 0 | %d in all storms | %s |\n", bad, verdict(bad == 0))
	}
	p("\n")
}
