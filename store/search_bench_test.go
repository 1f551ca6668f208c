package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	neturl "net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"agora/store/pgtest"
)

// BenchmarkSearch measures search latency through Search (the store
// method: its transaction, both statements, the snippets) in a tenant of
// 100,000 comments on 2,000 posts, next to another tenant as big and a
// small one of 1,000 comments. The text is 70% English, 15% Chinese, 8%
// Japanese and 7% Korean, its words drawn with a Zipf-like frequency from
// vocabularies of a few thousand words. One iteration is the first page
// (20 results, as a member) of the next query of benchSearches, in turn;
// p50 and p95 are over all iterations. Run it as
//
//	go test -run '^$' -bench BenchmarkSearch -benchtime 360x -timeout 30m -v ./store/
//
// Seeding takes a minute or two and happens once. Two variants take the
// design apart, to show what each part is worth: the GIN index without
// tenant_id, and the match in the statement only, not in the policy. The
// write pair is what indexing adds to CreateComment.
func BenchmarkSearch(b *testing.B) {
	ctx := context.Background()
	url := pgtest.NewDatabase(b)
	db, err := Open(ctx, Config{URL: url, Hasher: fastHasher, StatementTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	u, err := neturl.Parse(url)
	if err != nil {
		b.Fatal(err)
	}
	super, err := pgx.Connect(ctx, pgtest.SuperuserURL(strings.TrimPrefix(u.Path, "/")))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { super.Close(context.Background()) })

	g := newTextGen(1)
	start := time.Now()
	big := seedSearchTenant(b, super, g, "big", 2000, 100_000)
	seedSearchTenant(b, super, g, "other", 2000, 100_000)
	small := seedSearchTenant(b, super, g, "small", 50, 1000)
	mustExec(b, super, `VACUUM ANALYZE`)
	var size string
	if err := super.QueryRow(ctx, `SELECT pg_size_pretty(pg_total_relation_size('search_docs')) || ' (GIN index ' ||
		pg_size_pretty(pg_relation_size('search_docs_match')) || ')'`).Scan(&size); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded 3 tenants, 201,000 comments and 4,050 posts in %v; search_docs is %s", time.Since(start).Round(time.Second), size)
	queries := benchSearches(g)

	member := Actor{UserID: 1, Role: RoleMember}
	run := func(b *testing.B, tenantID int64) []time.Duration {
		times := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			q := queries[i%len(queries)]
			t0 := time.Now()
			if _, err := db.Search(ctx, tenantID, member, SearchParams{Query: q.q, PageParams: PageParams{Limit: 20}}); err != nil {
				b.Fatalf("search %q: %v", q.q, err)
			}
			times = append(times, time.Since(t0))
		}
		b.StopTimer()
		reportPercentiles(b, times)
		return times
	}

	b.Run("tenant=big", func(b *testing.B) {
		times := run(b, big.id)
		if len(times) < 2*len(queries) {
			return // the one-iteration probe run
		}
		var sb strings.Builder
		fmt.Fprintf(&sb, "per query (median of %d runs; matches = visible documents in the tenant):\n", len(times)/len(queries))
		fmt.Fprintf(&sb, "| kind | query | matches | median ms |\n|---|---|---:|---:|\n")
		for i, q := range queries {
			var mine []time.Duration
			for j := i; j < len(times); j += len(queries) {
				mine = append(mine, times[j])
			}
			fmt.Fprintf(&sb, "| %s | %s | %d | %.1f |\n", q.kind, q.q, countMatches(b, super, big.id, q.q), ms(percentile(mine, 50)))
		}
		b.Log(sb.String())
		for _, q := range []string{"people", "米饭"} {
			b.Logf("EXPLAIN ANALYZE of %q:\n%s", q, explainSearch(b, db, big.id, q))
		}
	})
	b.Run("tenant=small", func(b *testing.B) { run(b, small.id) })

	b.Run("variant=gin-without-tenant", func(b *testing.B) {
		mustExec(b, super, `DROP INDEX search_docs_match`)
		mustExec(b, super, `CREATE INDEX search_docs_match ON search_docs USING gin (doc)`)
		mustExec(b, super, `ANALYZE search_docs`)
		b.Cleanup(func() {
			mustExec(b, super, `DROP INDEX search_docs_match`)
			mustExec(b, super, `CREATE INDEX search_docs_match ON search_docs USING gin (tenant_id, doc)`)
		})
		run(b, big.id)
	})
	b.Run("variant=match-in-statement-only", func(b *testing.B) {
		mustExec(b, super, `ALTER POLICY tenant_isolation ON search_docs
			USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint)`)
		b.Cleanup(func() {
			mustExec(b, super, `ALTER POLICY tenant_isolation ON search_docs
				USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint AND doc @@ search_filter())`)
		})
		if times := run(b, big.id); len(times) > 1 {
			b.Logf("EXPLAIN ANALYZE of %q:\n%s", "米饭", explainSearch(b, db, big.id, "米饭"))
		}
	})

	// What indexing costs a write, in the database: 10,000 comments in one
	// INSERT, with the search trigger and without, in rounds that
	// alternate (the machine is shared: load drifts), each rolled back.
	// Reported: the fastest round of each, per comment.
	b.Run("write=10k-comments", func(b *testing.B) {
		bodies := make([]string, 10_000)
		for i := range bodies {
			bodies[i] = g.text()
		}
		insert := func(indexed bool) time.Duration {
			tx, err := super.Begin(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if !indexed {
				if _, err := tx.Exec(ctx, `ALTER TABLE comments DISABLE TRIGGER comments_search_insert`); err != nil {
					b.Fatal(err)
				}
			}
			t0 := time.Now()
			if _, err := tx.Exec(ctx, `INSERT INTO comments (tenant_id, post_id, author_id, body)
				SELECT $1, $2, $3, body FROM unnest($4::text[]) body`, big.id, big.post, big.user, bodies); err != nil {
				b.Fatal(err)
			}
			return time.Since(t0)
		}
		on, off := time.Hour, time.Hour
		for range max(1, b.N/60) {
			on, off = min(on, insert(true)), min(off, insert(false))
		}
		b.ReportMetric(float64(on.Microseconds())/float64(len(bodies)), "us/comment-indexed")
		b.ReportMetric(float64(off.Microseconds())/float64(len(bodies)), "us/comment-not-indexed")
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func reportPercentiles(b *testing.B, times []time.Duration) {
	b.ReportMetric(ms(percentile(times, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(times, 95)), "p95-ms")
	b.ReportMetric(ms(slices.Max(times)), "max-ms")
}

func mustExec(b *testing.B, conn *pgx.Conn, sql string) {
	b.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		b.Fatalf("%s: %v", sql, err)
	}
}

// countMatches counts the documents a query matches in a tenant (none of
// the seeded ones is hidden), as the superuser: no policy, so no search
// setting is needed.
func countMatches(b *testing.B, super *pgx.Conn, tenantID int64, q string) int {
	b.Helper()
	var n int
	if err := super.QueryRow(context.Background(), `SELECT count(*) FROM search_docs WHERE tenant_id = $1 AND doc @@ search_query($2)`,
		tenantID, q).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

func explainSearch(b *testing.B, db *DB, tenantID int64, q string) string {
	b.Helper()
	var plan []string
	err := db.WithTenant(context.Background(), tenantID, func(tx *Tx) error {
		if _, err := tx.Exec(context.Background(), `SELECT set_config('app.search_query', search_query($1)::text, true)`, q); err != nil {
			return err
		}
		rows, err := tx.Query(context.Background(), `EXPLAIN (ANALYZE, BUFFERS) `+searchSQL(searchConditions(Actor{}, 0)),
			float32(1e30), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), int64(1<<62), int64(1<<62), 21)
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return strings.Join(plan, "\n")
}

// seedSearchTenant makes a tenant with 50 users, 5 boards, posts and
// comments, as the superuser with COPY (which row level security would
// refuse the application role); the search triggers index every row.
func seedSearchTenant(b *testing.B, super *pgx.Conn, g *textGen, slug string, posts, comments int) seededTenant {
	b.Helper()
	ctx := context.Background()
	var tenantID, user0, board0 int64
	err := super.QueryRow(ctx, `INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id`, slug).Scan(&tenantID)
	if err == nil {
		err = super.QueryRow(ctx, `WITH u AS (INSERT INTO users (tenant_id, username, password_hash)
			SELECT $1, 'user' || i, 'x' FROM generate_series(1, 50) i RETURNING id) SELECT min(id) FROM u`, tenantID).Scan(&user0)
	}
	if err == nil {
		err = super.QueryRow(ctx, `WITH b AS (INSERT INTO boards (tenant_id, slug, name)
			SELECT $1, 'b' || i, 'Board ' || i FROM generate_series(1, 5) i RETURNING id) SELECT min(id) FROM b`, tenantID).Scan(&board0)
	}
	if err != nil {
		b.Fatal(err)
	}
	year := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i, n int) time.Time {
		return year.Add(time.Duration(i) * (365 * 24 * time.Hour / time.Duration(n)))
	}
	postRows := make([][]any, posts)
	for i := range postRows {
		postRows[i] = []any{tenantID, board0 + int64(i%5), user0 + int64(g.r.IntN(50)), g.title(), g.text(), at(i, posts)}
	}
	if _, err := super.CopyFrom(ctx, pgx.Identifier{"posts"}, []string{"tenant_id", "board_id", "author_id", "title", "body", "created_at"},
		pgx.CopyFromRows(postRows)); err != nil {
		b.Fatal(err)
	}
	var post0 int64
	if err := super.QueryRow(ctx, `SELECT min(id) FROM posts WHERE tenant_id = $1`, tenantID).Scan(&post0); err != nil {
		b.Fatal(err)
	}
	commentRows := make([][]any, comments)
	for i := range commentRows {
		commentRows[i] = []any{tenantID, post0 + int64(g.r.IntN(posts)), user0 + int64(g.r.IntN(50)), g.text(), at(i, comments)}
	}
	if _, err := super.CopyFrom(ctx, pgx.Identifier{"comments"}, []string{"tenant_id", "post_id", "author_id", "body", "created_at"},
		pgx.CopyFromRows(commentRows)); err != nil {
		b.Fatal(err)
	}
	return seededTenant{id: tenantID, user: user0, post: post0}
}

// seededTenant is a seeded tenant, one of its users and one of its posts.
type seededTenant struct{ id, user, post int64 }

// textGen writes forum-like text from fixed vocabularies: real words at
// the head of each (the common ones), made-up words in the long tail.
type textGen struct {
	r              *rand.Rand
	en, zh, ja, ko []string
	zEn, zZh       *rand.Zipf
	zJa, zKo       *rand.Zipf
}

const (
	enHead = "the be to of and a in that have i it for not on with he as you do at this but his by from they we say her she or " +
		"an will my one all would there their what so up out if about who get which go me when make can like time no just him " +
		"know take people into year your good some could them see other than then now look only come its over think also back " +
		"after use two how our work first well way even new want because any these give day most us is was are been has had " +
		"were said did many more very thing man world life hand part child eye woman place week case point government company " +
		"number group problem fact morning evening night water food money house city country school family friend question " +
		"answer forum thread comment reply editor version release update feature bug issue test build deploy cloud network " +
		"memory storage query index table column row database server window garden weather kitchen rice coffee music travel " +
		"computer program search"
	zhHead = "我们 你们 他们 今天 明天 米饭 喜欢 工作 学习 中国 北京 上海 朋友 电脑 手机 问题 时间 公司 学校 老师 学生 医生 天气 饭店 " +
		"咖啡 茶叶 音乐 电影 图书 城市 国家 世界 生活 家庭 孩子 父母 经济 历史 文化 科学 技术 数据 系统 网络 软件 程序 服务 用户 市场 " +
		"价格 产品 质量 安全 发展 社会 政府 环境 健康 运动 旅游 语言 文字 汉字 东西 地方 开始 结束 觉得 知道 可以 应该 需要 希望 认为 " +
		"发现 准备 决定 帮助 介绍 讨论 研究 解决 方法 结果 原因 意思 办法 机会 能力 经验 关系 感觉 心情 身体 面条 饺子 包子 鸡蛋 牛奶 " +
		"水果 苹果 香蕉 西瓜 米粉 馒头 火车 飞机 汽车 地铁 公园 银行 医院 商店 超市 厨房 客厅 卧室 窗户 桌子 椅子"
	jaHead = "今日 明日 東京 大阪 京都 ラーメン 寿司 天ぷら タワー カメラ コンピューター ソフトウェア データベース サーバー ネットワーク " +
		"日本語 勉強 仕事 会社 電車 駅前 天気 ありがとう こんにちは すみません 美味しい 楽しい 難しい 新しい 古い 大きい 小さい " +
		"映画 音楽 写真 旅行 料理 学校 先生 学生 友達 家族 子供 時間 問題 意見 経験 開発 設計 検索 機能 画面 ボタン ユーザー 投稿"
	koHead = "오늘 내일 사람 김치 서울 부산 한국어 학교 선생님 학생 친구 가족 회사 공부 음식 커피 영화 음악 사진 여행 컴퓨터 프로그램 " +
		"데이터 검색 사용자 댓글 게시판 질문 대답 문제 시간 생각 이야기 날씨 비빔밥 불고기 떡볶이 라면 맛있다 좋아요 감사합니다 " +
		"안녕하세요 먹었다 갔다 왔다 봤다 했다 있다 없다 크다 작다 많다 적다 빠르다 느리다"
)

func newTextGen(seed uint64) *textGen {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	g := &textGen{r: r}
	g.en = strings.Fields(enHead)
	syllables := strings.Fields("ka ru mo ti ne sa lo vi da pe ku mi to ra zo fe li na go se bu ya re")
	for len(g.en) < 5000 {
		var w strings.Builder
		for range 2 + r.IntN(3) {
			w.WriteString(syllables[r.IntN(len(syllables))])
		}
		g.en = append(g.en, w.String())
	}
	g.zh = strings.Fields(zhHead)
	hanzi := []rune(strings.ReplaceAll(zhHead, " ", ""))
	for len(g.zh) < 1500 {
		g.zh = append(g.zh, string([]rune{hanzi[r.IntN(len(hanzi))], hanzi[r.IntN(len(hanzi))]}))
	}
	g.ja = strings.Fields(jaHead)
	for len(g.ja) < 800 {
		var w []rune
		for range 3 + r.IntN(3) {
			w = append(w, rune(0x30A2+r.IntN(0x30F3-0x30A2)))
		}
		g.ja = append(g.ja, string(w))
	}
	g.ko = strings.Fields(koHead)
	for len(g.ko) < 800 {
		g.ko = append(g.ko, string([]rune{rune(0xAC00 + r.IntN(400)*28), rune(0xAC00 + r.IntN(400)*28)}))
	}
	zipf := func(n int) *rand.Zipf { return rand.NewZipf(r, 1.1, 1, uint64(n-1)) }
	g.zEn, g.zZh, g.zJa, g.zKo = zipf(len(g.en)), zipf(len(g.zh)), zipf(len(g.ja)), zipf(len(g.ko))
	return g
}

func (g *textGen) words(n int, vocab []string, z *rand.Zipf, sep func() string) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			sb.WriteString(sep())
		}
		sb.WriteString(vocab[z.Uint64()])
	}
	return sb.String()
}

func (g *textGen) pick(options ...string) string { return options[g.r.IntN(len(options))] }

// text is a comment or a post body.
func (g *textGen) text() string {
	switch p := g.r.Float64(); {
	case p < 0.70:
		s := g.words(10+g.r.IntN(50), g.en, g.zEn, func() string {
			if g.r.IntN(12) == 0 {
				return ". "
			}
			return " "
		})
		return strings.ToUpper(s[:1]) + s[1:] + "."
	case p < 0.85:
		return g.words(8+g.r.IntN(30), g.zh, g.zZh, func() string {
			if g.r.IntN(6) == 0 {
				return g.pick("，", "。")
			}
			return ""
		}) + "。"
	case p < 0.93:
		return g.words(6+g.r.IntN(20), g.ja, g.zJa, func() string { return g.pick("は", "の", "を", "に", "で", "が", "。") }) + "。"
	default:
		return g.words(6+g.r.IntN(20), g.ko, g.zKo, func() string { return g.pick("를 ", "는 ", "이 ", "에서 ", " ", " ") }) + "."
	}
}

func (g *textGen) title() string {
	if g.r.IntN(10) < 7 {
		s := g.words(3+g.r.IntN(6), g.en, g.zEn, func() string { return " " })
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return g.words(2+g.r.IntN(4), g.zh, g.zZh, func() string { return "" })
}

// benchSearches are the queries, from the vocabularies: common, middling
// and rare words, pairs, prefixes, and Chinese of one, two and four
// characters, Japanese and Korean words. 饭米 is 米饭 reversed: most
// documents with both characters have them the other way round, so most
// of what the index finds is dropped when positions are checked.
func benchSearches(g *textGen) []struct{ kind, q string } {
	return []struct{ kind, q string }{
		{"en, most common word", "the"}, {"en common", "people"}, {"en common", "think"}, {"en common", "work"},
		{"en middling", "database"}, {"en middling", "garden"}, {"en middling", "weather"}, {"en middling", "question"},
		{"en rare", g.en[1500]}, {"en rare", g.en[3000]}, {"en rare", g.en[4500]}, {"en none", "zzyzx"},
		{"en two words", "think people"}, {"en two words", "database window"}, {"en two words", "good morning"},
		{"en prefix", "dat"}, {"en prefix", "gar"}, {"en prefix", "wea"},
		{"zh 1 char", "米"}, {"zh 1 char", "茶"}, {"zh 2 chars", "米饭"}, {"zh 2 chars", "工作"}, {"zh 2 chars", "天气"},
		{"zh 2 chars", "银行"}, {"zh 2 chars, reversed", "饭米"}, {"zh 4 chars", "喜欢米饭"}, {"zh 4 chars", "北京天气"},
		{"ja", "東京"}, {"ja", "タワー"}, {"ja", "ラーメン"}, {"ja", "勉強"}, {"ja", "データベース"},
		{"ko", "김치"}, {"ko", "서울"}, {"ko", "학교"}, {"ko", "비빔밥"},
	}
}
