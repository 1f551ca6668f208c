package main

import (
	"fmt"
	"io"
	"regexp"
)

var samplesLine = regexp.MustCompile(`Total samples = \S+ \(\s*([0-9.]+%)\)`)

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
	targetWriteRatio     = 0.25 // REST comment writes/s / pgbench single-row INSERTs/s
	targetPgMSPerWrite   = 0.35 // PostgreSQL CPU ms per REST comment
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
		var bad, answered int64
		for _, p := range rs.Pairs {
			for _, x := range []ReconnectResult{p.Memory, p.NoMemory} {
				bad += x.Lost + x.Duplicated + x.SeqGaps + int64(x.Failed)
				answered += x.Errors
			}
		}
		p("| Reconnect storm, %d subscribers over %d rooms resuming at once with since: History queries | O(rooms): ≤ %.0f per room | %.3f per resume (%.3f to %.3f over %d pairs) = %.1f per room; without recent events in memory %.3f per resume | %s |\n",
			o.Subscribers, o.Rooms, targetQueriesPerRoom, q, qLo, qHi, len(rs.Pairs), perRoom, qb, verdict(perRoom <= targetQueriesPerRoom))
		p("| Reconnect storm: time until the last client is live | (reported) | %.2f s (%.2f to %.2f); without recent events in memory %.2f s: %.2f× (%.2f to %.2f) | - |\n",
			live, liveLo, liveHi, liveB, lr, lrLo, lrHi)
		p("| Reconnect storm: lost, duplicated, seq gaps, failed resumes | 0 | %d in all storms (%d subscriptions answered `unavailable` and made again, as the protocol asks) | %s |\n", bad, answered, verdict(bad == 0))
	}
	if r := find(runs, "db"); r != nil && r.DB != nil {
		d := r.DB
		rt, rtLo, rtHi, n := r.dbStat(func(d DBResult) float64 { return d.Ratio })
		ws, _, _, _ := r.dbStat(func(d DBResult) float64 { return d.WritesPerSec })
		tps, _, _, _ := r.dbStat(func(d DBResult) float64 { return d.PgbenchTPS })
		p("| One round trip per write: REST comment writes/s, %d writers over %d posts, no subscribers, against pgbench single-row INSERT at %d clients, same cluster, interleaved pairs | ≥ %.2f× | %.3f× (%.3f to %.3f over %d pairs): %.0f/s vs %.0f/s | %s, by %+.3f× |\n",
			d.Writers, d.Posts, r.Options.PgbenchConns, targetWriteRatio, rt, rtLo, rtHi, n, ws, tps, verdict(rt >= targetWriteRatio), rt-targetWriteRatio)
		pg, pgLo, pgHi, _ := r.dbStat(func(d DBResult) float64 { _, pg, _ := d.perWrite(); return pg })
		pgb, pgbLo, pgbHi, _ := r.dbStat(func(d DBResult) float64 { _, _, pgb := d.perWrite(); return pgb })
		srv, srvLo, srvHi, _ := r.dbStat(func(d DBResult) float64 { srv, _, _ := d.perWrite(); return srv })
		p("| One round trip per write: PostgreSQL CPU per REST comment | ≤ %.2f ms | %.3f ms (%.3f to %.3f over %d pairs); per pgbench INSERT %.3f ms (%.3f to %.3f); server CPU per REST comment %.3f ms (%.3f to %.3f) | %s, by %+.3f ms |\n",
			targetPgMSPerWrite, pg, pgLo, pgHi, n, pgb, pgbLo, pgbHi, srv, srvLo, srvHi, verdict(pg <= targetPgMSPerWrite), pg-targetPgMSPerWrite)
		failed, errs := dbFailures(r.dbPairs())
		total := failed
		for _, x := range r.dbPairs() {
			total += x.Comments
		}
		detail := ""
		if failed > 0 {
			detail = " (" + counts(errs) + ")"
		}
		p("| Failed REST writes in those runs (any answer but 201) | 0 | %d of %d%s | %s |\n", failed, total, detail, verdict(failed == 0))
	}
	p("\n")
}

// writeFindings12 says, with this run's numbers and profiles, what stands
// in the way of the issue-12 targets that were missed, and what was done.
func writeFindings12(w io.Writer, runs []benchRun) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## What the issue-12 figures show\n\n")
	if r := find(runs, "join-storm"); r != nil && r.JoinStorm != nil && len(r.JoinStorm.Pairs) > 0 {
		js := r.JoinStorm
		kb, _, _ := js.stat(func(p StormPair) float64 { return p.Small.KBPerClient })
		st, _, _ := js.stat(func(p StormPair) float64 { return p.Small.StateKBPerClient })
		msgs, _, _ := js.stat(func(p StormPair) float64 {
			return ratio(float64(p.Small.PresenceMessages), float64(p.Small.Users-p.Small.Failed))
		})
		p("- **Join storm.** Of the %.2f KB of presence a client of the %d-user storm received, %.2f KB was its first state and the rest %.2f KB (%.1f messages per client in all): past 100 users, joins are counts once a second, so the room's traffic grows with the crowd. The state is what API.md says: 100 users listed, about 80 bytes each as the contract shapes them (`{\"user\":{\"id\",\"username\"},\"since\"}` with a nanosecond time), so every client that joins a room already past 100 gets about 8 KB: a 5 KB average needs a shorter truncated list (about 60) or shorter entries, a change of the contract, not of the code.\n",
			kb, js.Sizes[0], st, kb-st, msgs)
	}
	if r := find(runs, "idle"); r != nil && r.Idle != nil && len(r.Idle.Pairs) > 0 {
		prof := r.Idle.Pairs[0].Agora.ConnectProfile
		busy := "?"
		if m := samplesLine.FindStringSubmatch(pprofTop(prof, "", 1)); m != nil {
			busy = m[1]
		}
		p("- **Connect rate.** An upgrade whose tenant and token the caches know (store's tenant and session caches, the latter cleared on every instance by revocations, bans and role changes) makes no database round trip before realtime sees it; each subscription then asks whether its room exists, one round trip shared by everyone waiting on the same room. Bare melody makes none. In the first 3 s of the first pair's connect phase the server used %s of its core.\n", busy)
		if lines := pprofLines(prof, "store.(*DB).TenantBySlug", "store.(*DB).Authenticate", "realtime.(*Hub).runSession", "realtime.(*Hub).handle", "net/http.(*conn).serve"); lines != "" {
			p("\n  Agora's connect phase (`go tool pprof -top -cum`, server pinned to one core):\n\n```\n%s\n```\n\n", lines)
		}
	}
	if r := find(runs, "n10k-r1-sat"); r != nil && r.Agora != nil {
		mpf, _, _, _ := r.pairStat(func(p ScenarioPair) float64 { return ratio(float64(p.Agora.Messages), float64(p.Agora.Frames)) })
		wr, _, _, _ := r.pairStat(func(p ScenarioPair) float64 { return p.Agora.WriteRate })
		rest, _, _, _ := r.pairStat(func(p ScenarioPair) float64 { return p.Agora.REST.P50 })
		p("- **CPU per delivery at saturation.** A session has one frame at a time in melody's queue, and at most 128 sessions write at once; what comes for a session meanwhile goes out packed. Packing divides the per-frame cost (one `write(2)` per session per frame, the top of the profiles) by the events that arrive during one round of the room's fan-out: here %.2f messages per frame, with the writes coming at %.1f/s of the %.0f/s offered (REST p50 %.0f ms). ",
			mpf, wr, r.Options.Rate, rest)
		if wr < 0.8*r.Options.Rate {
			p("The writes, not the fan-out, set the pace: on this machine the server shares its core, and PostgreSQL the other, with the load tool and other work, and a comment's database round trip waits in the server's run queue behind the fan-out.\n")
		} else {
			p("The writes kept the offered pace (a comment is one database round trip), so each round of the fan-out found several new events per session to pack.\n")
		}
	}
	p("\n")
}
