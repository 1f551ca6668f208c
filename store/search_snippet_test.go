package store

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSearchTerms(t *testing.T) {
	for q, want := range map[string]string{
		"Rust  ownership":    "rust|ownership",
		"米饭":                 "米 饭",
		"米饭、鸡蛋　水":            "米 饭|鸡 蛋|水",
		"東京タワー":              "東 京 タ ワ ー",
		"node.js e-mail":     "node js|e mail",
		"ＰＯＳＴＧＲＥＳ":           "postgres",
		"ΟΔΟΣ":               "οδοσ",
		"!!! ??? ':*&|<->\\": "",
	} {
		var got []string
		for _, term := range searchTerms(q) {
			got = append(got, strings.Join(term, " "))
		}
		if g := strings.Join(got, "|"); g != want {
			t.Errorf("searchTerms(%q) = %q, want %q", q, g, want)
		}
	}
}

func TestSnippet(t *testing.T) {
	long := strings.Repeat("filler words that say nothing much at all ", 20)
	cases := []struct {
		name, text, q, want string
	}{
		{"Prefix", "I like PostgreSQL a lot", "postgres", "I like <mark>PostgreS</mark>QL a lot"},
		{"Escaped", `<script>alert("x")</script> & rust`, "rust",
			`&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; <mark>rust</mark>`},
		{"MarkInsideMarkup", `<script>alert(1)</script>`, "script",
			`&lt;<mark>script</mark>&gt;alert(1)&lt;/<mark>script</mark>&gt;`},
		{"Chinese", "我喜欢米饭。", "米饭", "我喜欢<mark>米饭</mark>。"},
		{"ChineseOrder", "我喜欢米饭。", "饭米", "我喜欢米饭。"},
		{"Japanese", "東京タワーに行きました", "タワー", "東京<mark>タワー</mark>に行きました"},
		{"Korean", "김치를 먹었다", "김치", "<mark>김치</mark>를 먹었다"},
		{"FullWidth", "ＰＯＳＴＧＲＥＳ is here", "postgres", "<mark>ＰＯＳＴＧＲＥＳ</mark> is here"},
		{"Case", "GREEK ΟΔΟΣ and Ärger", "οδος ärger", "GREEK <mark>ΟΔΟΣ</mark> and <mark>Ärger</mark>"},
		{"ShortWordIsWhole", "gone go going", "go", "gone <mark>go</mark> going"},
		{"Phrase", "say hello,  world now", "hello,world", "say <mark>hello, world</mark> now"},
		{"Whitespace", "a\n\n\tb  c", "zzz", "a b c"},
		{"NoMatch", "nothing here", "rust", "nothing here"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := snippet(c.text, searchTerms(c.q)); got != c.want {
				t.Errorf("snippet(%q, %q)\n got %q\nwant %q", c.text, c.q, got, c.want)
			}
		})
	}

	t.Run("Window", func(t *testing.T) {
		text := long + "the needle is here, " + long + "and a haystack"
		got := snippet(text, searchTerms("needle haystack"))
		if !strings.HasPrefix(got, "…") || !strings.HasSuffix(got, "…") || !strings.Contains(got, "the <mark>needle</mark> is here") {
			t.Errorf("snippet of a long text: %q", got)
		}
		plain := strings.Trim(regexp.MustCompile(`</?mark>`).ReplaceAllString(got, ""), "…")
		if n := utf8.RuneCountInString(plain); n > snippetRunes {
			t.Errorf("snippet of %d runes, want at most %d", n, snippetRunes)
		}
	})
	t.Run("WindowWithMostTerms", func(t *testing.T) {
		text := "alpha " + long + "alpha beta gamma " + long
		got := snippet(text, searchTerms("alpha beta gamma"))
		if !strings.Contains(got, "<mark>alpha</mark> <mark>beta</mark> <mark>gamma</mark>") {
			t.Errorf("snippet should show the place with all three terms: %q", got)
		}
	})
	t.Run("PostTitleOrBody", func(t *testing.T) {
		if got := postSnippet("Rust ownership", "about memory", searchTerms("rust")); got != "<mark>Rust</mark> ownership" {
			t.Errorf("title-only match: %q", got)
		}
		if got := postSnippet("Rust ownership", "rust and memory", searchTerms("rust")); got != "<mark>rust</mark> and memory" {
			t.Errorf("title and body match: %q, want the body", got)
		}
	})
}

// FuzzSnippet: whatever the text and query, a snippet holds no markup but
// <mark> and </mark>, and never panics.
func FuzzSnippet(f *testing.F) {
	f.Add("<script>alert(1)</script> rust", "rust")
	f.Add("我喜欢米饭", "米饭")
	f.Add("ＰＯＳＴ &amp; ΟΔΟΣ ㈱", "post ㈱")
	f.Fuzz(func(t *testing.T, text, q string) {
		got := snippet(text, searchTerms(q))
		rest := strings.NewReplacer("<mark>", "", "</mark>", "").Replace(got)
		if strings.ContainsAny(rest, "<>\"'") {
			t.Fatalf("snippet(%q, %q) = %q: markup or quotes outside <mark>", text, q, got)
		}
	})
}

// BenchmarkSnippet: the Go side of a result, for a body of ordinary length
// and bodies of the largest size with the match at the end (the whole text
// is folded and scanned).
func BenchmarkSnippet(b *testing.B) {
	for name, text := range map[string]string{
		"english-150":   strings.Repeat("filler words say little ", 6) + " the needle",
		"english-20000": strings.Repeat("filler words say little ", 834)[:19990] + " the needle",
		"common-20000":  strings.Repeat("the needle and the haystack ", 715),
		"chinese-20000": strings.Repeat("我喜欢吃面条", 3333) + "米饭",
	} {
		terms := searchTerms("needle 米饭")
		b.Run(name, func(b *testing.B) {
			for range b.N {
				snippet(text, terms)
			}
		})
	}
}
