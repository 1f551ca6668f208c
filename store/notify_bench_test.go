package store

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"agora/store/pgtest"
)

// What one comment costs, with and without the notifications it causes:
//
//	go test -run '^$' -bench BenchmarkCommentCost -benchtime 1000x ./store/
//
// reports per comment the round trips to Postgres (statements counted by
// a pgx tracer), the server's CPU (this process) and Postgres's CPU (the
// backends of this test's cluster, from /proc), beside the wall time.
// Writes are sequential, one connection busy at a time, so the numbers
// are the work of one write, not of contention.
func BenchmarkCommentCost(b *testing.B) {
	cases := []struct {
		name string
		// write makes one comment; the setup gives it a post by "author".
		write func(ctx context.Context, db *DB, f *costFixture, i int) error
	}{
		// The post's author on their own post: nobody to notify.
		{"own-post", func(ctx context.Context, db *DB, f *costFixture, i int) error {
			_, err := db.CreateComment(ctx, f.tenantID, ActorOf(f.author), f.postID, "a comment of some ordinary length, "+strconv.Itoa(i))
			return err
		}},
		// Someone else: the author gets one reply notification.
		{"reply", func(ctx context.Context, db *DB, f *costFixture, i int) error {
			_, err := db.CreateComment(ctx, f.tenantID, ActorOf(f.other), f.postID, "a comment of some ordinary length, "+strconv.Itoa(i))
			return err
		}},
		// Someone else mentioning two more people: three notifications.
		{"reply-2-mentions", func(ctx context.Context, db *DB, f *costFixture, i int) error {
			_, err := db.CreateComment(ctx, f.tenantID, ActorOf(f.other), f.postID, "@third and @fourth, a comment, "+strconv.Itoa(i))
			return err
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			db, statements := openCountingDB(b, Config{})
			ctx := context.Background()
			f := newCostFixture(b, db)
			// Warm up: connections, plans, the rooms' rows.
			for i := range 20 {
				if err := c.write(ctx, db, f, i); err != nil {
					b.Fatal(err)
				}
			}
			pg := postgresCPU(b, db)
			startPG, startSelf, startStmts := pg(), selfCPU(), statements.Load()
			b.ResetTimer()
			for i := range b.N {
				if err := c.write(ctx, db, f, i); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(float64(statements.Load()-startStmts)/n, "roundtrips/op")
			b.ReportMetric(float64(selfCPU()-startSelf)/n/1e3, "server-cpu-us/op")
			b.ReportMetric(float64(pg()-startPG)/n/1e3, "postgres-cpu-us/op")
		})
	}
}

type costFixture struct {
	tenantID      int64
	author, other User
	postID        int64
}

func newCostFixture(b *testing.B, db *DB) *costFixture {
	ctx := context.Background()
	t, err := db.CreateTenant(ctx, "cost", "Cost")
	if err != nil {
		b.Fatal(err)
	}
	f := &costFixture{tenantID: t.ID}
	var users []User
	for _, name := range []string{"admin", "author", "other", "third", "fourth"} {
		u, _, err := db.Register(ctx, t.ID, Registration{Username: name, Password: testPassword})
		if err != nil {
			b.Fatal(err)
		}
		users = append(users, u)
	}
	f.author, f.other = users[1], users[2]
	board, err := db.CreateBoard(ctx, t.ID, ActorOf(users[0]), NewBoard{Name: "General"})
	if err != nil {
		b.Fatal(err)
	}
	p, err := db.CreatePost(ctx, t.ID, ActorOf(f.author), board.ID, "A thread", "Its first post.")
	if err != nil {
		b.Fatal(err)
	}
	f.postID = p.ID
	return f
}

// statementCounter counts what goes to Postgres: each Exec, Query and
// QueryRow is one round trip (BEGIN with its set_config and COMMIT
// included), and so is each batch.
type statementCounter struct{ n *atomic.Int64 }

func (s statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	s.n.Add(1)
	return ctx
}
func (statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (s statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	s.n.Add(1)
	return ctx
}
func (statementCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// openCountingDB opens the store on a fresh database with a pool whose
// statements are counted (cfg's URL and Hasher are set here).
func openCountingDB(tb testing.TB, cfg Config) (*DB, *atomic.Int64) {
	tb.Helper()
	ctx := context.Background()
	cfg.URL, cfg.Hasher = pgtest.NewDatabase(tb), fastHasher
	db, err := Open(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(db.Close)
	n := &atomic.Int64{}
	pc := db.pool.p.Config()
	pc.ConnConfig.Tracer = statementCounter{n}
	counted, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		tb.Fatal(err)
	}
	db.pool.p.Close()
	db.pool.p = counted
	return db, n
}

// selfCPU is this process's user and system CPU time in nanoseconds.
func selfCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// postgresCPU returns a reader of the CPU time (ns) that the processes of
// db's cluster have used: the postmaster's children (backends, WAL writer,
// checkpointer...) read from /proc.
func postgresCPU(b *testing.B, db *DB) func() int64 {
	b.Helper()
	var backend int
	if err := db.pool.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		b.Fatal(err)
	}
	postmaster := procField(b, backend, 1) // ppid
	tick := int64(time.Second) / 100       // USER_HZ
	return func() int64 {
		var total int64
		entries, err := os.ReadDir("/proc")
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				continue
			}
			f := statFields(string(stat))
			if len(f) < 13 || (f[1] != strconv.Itoa(postmaster) && pid != postmaster) {
				continue
			}
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			total += (u + s) * tick
		}
		return total
	}
}

// statFields splits /proc/pid/stat after the command (which may hold
// spaces): [0] state, [1] ppid, ... [11] utime, [12] stime.
func statFields(stat string) []string {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(stat[i+1:])
}

func procField(b *testing.B, pid, field int) int {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	v, err := strconv.Atoi(statFields(string(stat))[field])
	if err != nil {
		b.Fatal(err)
	}
	return v
}
