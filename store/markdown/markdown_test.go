package markdown

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// users is the tenant the tests render for: bob and Alice exist.
var users = map[string]string{"bob": "bob", "alice": "Alice"}

func render(src string) string {
	d := Parse(src)
	found := map[string]string{}
	for _, name := range d.Mentions() {
		if u, ok := users[name]; ok {
			found[name] = u
		}
	}
	return d.HTML("acme", found)
}

func TestRender(t *testing.T) {
	const rel = ` rel="nofollow ugc noopener"`
	for _, tc := range []struct {
		name, in, want string
	}{
		{"Paragraphs", "one\ntwo\n\nthree", "<p>one\ntwo</p>\n<p>three</p>"},
		{"Emphasis", "*a* **b** ~~c~~ `d`", "<p><em>a</em> <strong>b</strong> <del>c</del> <code>d</code></p>"},
		{"InlineHTMLIsText", "Hello <b>bold</b> & \"q\"", "<p>Hello &lt;b&gt;bold&lt;/b&gt; &amp; &#34;q&#34;</p>"},
		{"HTMLBlockIsText", "<img src=x onerror=alert(1)>", "<p>&lt;img src=x onerror=alert(1)&gt;</p>"},
		{"ScriptIsText", "<script>alert(2)</script>", "<p>&lt;script&gt;alert(2)&lt;/script&gt;</p>"},
		{"HTMLBlockKeepsLines", "<div>\n*hi*\n</div>\n\nafter", "<p>&lt;div&gt;\n*hi*\n&lt;/div&gt;</p>\n<p>after</p>"},
		{"Link", "[x](https://example.com/a?b=1&c=2)", `<p><a href="https://example.com/a?b=1&amp;c=2"` + rel + `>x</a></p>`},
		{"LinkTitle", `[x](http://example.com "a & b")`, `<p><a href="http://example.com"` + rel + ` title="a &amp; b">x</a></p>`},
		{"Mailto", "[mail](mailto:a@example.com)", `<p><a href="mailto:a@example.com"` + rel + `>mail</a></p>`},
		{"JavaScriptLinkDropped", "[y](javascript:alert(1)) [z](JaVaScRiPt:alert(1)) [w](<  javascript:alert(1)>)", "<p>y z w</p>"},
		{"DataLinkDropped", "[y](data:text/html;base64,PHNjcmlwdD4=)", "<p>y</p>"},
		{"RelativeLinkDropped", "[z](/t/acme/admin) [f](#top) [h](http:no-host)", "<p>z f h</p>"},
		{"AutolinkAngle", "<https://auto.example>", `<p><a href="https://auto.example"` + rel + `>https://auto.example</a></p>`},
		{"AutolinkJavaScriptIsText", "<javascript:alert(1)>", "<p>javascript:alert(1)</p>"},
		{"Linkify", "see www.example.com, https://example.org/@bob.", `<p>see <a href="http://www.example.com"` + rel + `>www.example.com</a>, <a href="https://example.org/@bob"` + rel + `>https://example.org/@bob</a>.</p>`},
		{"LinkifyEmail", "write to a@example.com", `<p>write to <a href="mailto:a@example.com"` + rel + `>a@example.com</a></p>`},
		{"NoFTP", "ftp://files.example/x", "<p>ftp://files.example/x</p>"},
		{"ImageIsLink", "![a *cat*](https://img.example/cat.png)", `<p><a href="https://img.example/cat.png"` + rel + `>a cat</a></p>`},
		{"ImageWithoutAlt", "![](https://img.example/cat.png)", `<p><a href="https://img.example/cat.png"` + rel + `>https://img.example/cat.png</a></p>`},
		{"ImageJavaScript", "![bad](javascript:alert(1))", "<p>bad</p>"},
		{"Mention", "hi @bob!", `<p>hi <a class="mention" href="/t/acme/u/bob">@bob</a>!</p>`},
		{"MentionAsRegistered", "(@ALICE)", `<p>(<a class="mention" href="/t/acme/u/Alice">@Alice</a>)</p>`},
		{"UnknownNameStaysText", "@nobody here", "<p>@nobody here</p>"},
		{"MentionNotInCode", "`@bob`\n\n    @bob\n\n```\n@bob\n```", "<p><code>@bob</code></p>\n<pre><code>@bob\n</code></pre>\n<pre><code>@bob\n</code></pre>"},
		{"MentionNotInLink", "[@bob](https://example.com)", `<p><a href="https://example.com"` + rel + `>@bob</a></p>`},
		{"MentionNotInWord", `x@bob a/@bob \@bob`, "<p>x@bob a/@bob @bob</p>"},
		{"MentionLength", "@bo @" + strings.Repeat("b", 33), "<p>@bo @" + strings.Repeat("b", 33) + "</p>"},
		{"CodeBlockLanguage", "```go\nx := <b>\n```", "<pre><code class=\"language-go\">x := &lt;b&gt;\n</code></pre>"},
		{"HostileLanguage", "```\" onmouseover=\"x\n1\n```", "<pre><code>1\n</code></pre>"},
		{"Lists", "1. a\n2. b\n\n3) c\n\n- d", "<ol>\n<li>a</li>\n<li>b</li>\n</ol>\n<ol start=\"3\">\n<li>c</li>\n</ol>\n<ul>\n<li>d</li>\n</ul>"},
		{"QuoteHeadingRule", "> q\n\n# H\n\n---", "<blockquote>\n<p>q</p>\n</blockquote>\n<h1>H</h1>\n<hr>"},
		{"NoHeadingIDs", "# Comments", "<h1>Comments</h1>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := render(tc.in)
			if got != tc.want {
				t.Errorf("render(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
			if why := unsafeHTML(got); why != "" {
				t.Errorf("render(%q) = %q: %s", tc.in, got, why)
			}
		})
	}
}

func TestMentions(t *testing.T) {
	d := Parse("@Bob and @bob, @carol_1 `@dave` [@erin](https://x.example) x@frank @gu")
	if got, want := d.Mentions(), []string{"bob", "carol_1"}; !slices.Equal(got, want) {
		t.Errorf("Mentions() = %q, want %q", got, want)
	}
	if got := Parse("no names here").Mentions(); len(got) != 0 {
		t.Errorf("Mentions() = %q, want none", got)
	}
}

// TestMentionsOnlyOfThisTenant: a name links only when the caller found
// it among the tenant's users, and the link names that tenant.
func TestMentionsOnlyOfThisTenant(t *testing.T) {
	d := Parse("@bob")
	if got := d.HTML("other", nil); got != "<p>@bob</p>" {
		t.Errorf("unresolved: %q", got)
	}
	if got := d.HTML("other", map[string]string{"bob": "Bob"}); got != `<p><a class="mention" href="/t/other/u/Bob">@Bob</a></p>` {
		t.Errorf("resolved in tenant other: %q", got)
	}
}

// unsafeHTML says what in out could run script, or "".
func unsafeHTML(out string) string {
	if strings.Contains(strings.ToLower(out), "<script") {
		return "contains <script"
	}
	z := html.NewTokenizer(strings.NewReader(out))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return ""
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			for _, a := range tok.Attr {
				key := strings.ToLower(a.Key)
				if strings.HasPrefix(key, "on") {
					return "event handler attribute " + a.Key + " on <" + tok.Data + ">"
				}
				if urlAttrs[key] && isJavaScriptURL(a.Val) {
					return "javascript: URL in " + a.Key + " on <" + tok.Data + ">"
				}
			}
		}
	}
}

var urlAttrs = map[string]bool{"href": true, "src": true, "action": true, "formaction": true, "cite": true,
	"data": true, "poster": true, "background": true, "xlink:href": true, "srcset": true}

// isJavaScriptURL reads a URL the way browsers do: they skip leading
// spaces and control characters and ignore tabs and newlines anywhere.
func isJavaScriptURL(v string) bool {
	v = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, v)
	v = strings.TrimLeft(v, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
	return strings.HasPrefix(strings.ToLower(v), "javascript:")
}

// FuzzRender: no input, with every mention resolved, produces a <script,
// an event handler attribute or a javascript: URL.
func FuzzRender(f *testing.F) {
	for _, s := range []string{
		"<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[x](javascript:alert(1))",
		"<a href=\"javascript:alert(1)\">x</a>", "![x](javascript:alert(1))", "<javascript:alert(1)>",
		"[x](java\tscript:alert(1))", "@bob [@bob](http://x.example) `@bob`", "<svg onload=alert(1)>",
		"```js\" onclick=\"x\n```", "[x](http://a.example \"\" onclick=\"x\")", "www.example.com/\"onmouseover=\"x",
		"<scr<script>ipt>", "&lt;script&gt;", "~~<b>~~", "> <iframe src=javascript:x>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		d := Parse(src)
		all := map[string]string{}
		for _, name := range d.Mentions() {
			all[name] = name
		}
		out := d.HTML("acme", all)
		if why := unsafeHTML(out); why != "" {
			t.Fatalf("render(%q) = %q: %s", src, out, why)
		}
	})
}

// TestUnsafeHTMLCatches: the fuzz test's judge sees what it looks for.
func TestUnsafeHTMLCatches(t *testing.T) {
	for _, bad := range []string{
		"<SCRIPT>x</SCRIPT>", `<p onclick="x">`, `<a href=" JavaScript:x">`, `<a href="java&#x09;script:x">`,
		`<img src="javascript:x"/>`, `<a HREF="&#106;avascript:x">`,
	} {
		if unsafeHTML(bad) == "" {
			t.Errorf("unsafeHTML(%q) found nothing", bad)
		}
	}
	for _, ok := range []string{`<p>&lt;script&gt; onclick=x javascript:x</p>`, `<a href="https://x.example/javascript:">`} {
		if why := unsafeHTML(ok); why != "" {
			t.Errorf("unsafeHTML(%q) = %s", ok, why)
		}
	}
}

// BenchmarkRender renders a typical comment and a body at the
// 20,000-character limit, dense with links, emphasis, code, raw HTML and
// mentions: the cost that formatting adds to a write.
func BenchmarkRender(b *testing.B) {
	para := "Some *emphasis*, a [link](https://example.com/x), `code`, <b>html</b>, www.example.org and @bob.\n\n"
	for _, size := range []int{300, 20000} {
		src := strings.Repeat(para, max(1, size/len(para)))
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				d := Parse(src)
				_ = d.HTML("acme", map[string]string{"bob": "bob"})
			}
		})
	}
}
