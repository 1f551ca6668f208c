// Package markdown turns what people write into the HTML that Agora stores
// beside it (body_html): CommonMark with autolinked URLs and ~~strike~~,
// rendered once when the text is written and safe to insert into a page
// as is.
//
// Safety has two walls. The renderer itself never lets markup through:
// raw HTML is shown as escaped text (not dropped: readers see what the
// author typed), only http, https and mailto links are made, each with
// rel="nofollow ugc noopener", and images become links, so a post cannot
// make readers' browsers fetch anything. Then bluemonday's allow list
// parses the output again and keeps only the elements and attributes that
// renderer can produce, so a bug in the first wall still cannot reach a
// page.
//
// Mentions (@name) need the tenant's users, which only the caller can
// look up: Parse finds the candidates, the caller resolves them (one
// query), and HTML renders with the answer.
package markdown

import (
	"bytes"
	"regexp"
	"strings"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// The converter and the policy are built once and never changed after:
// both are safe for concurrent use, like a compiled regexp.
var (
	converter = goldmark.New(
		goldmark.WithExtensions(
			extension.Strikethrough,
			// ftp, the linkifier's third default, is not a link we make.
			extension.NewLinkify(extension.WithLinkifyAllowedProtocols([]string{"http:", "https:"})),
		),
		goldmark.WithParserOptions(parser.WithInlineParsers(util.Prioritized(mentionParser{}, 500))),
		// Ahead of goldmark's own HTML renderer (priority 1000) for the
		// node kinds it would otherwise render unsafely or not as we want.
		goldmark.WithRendererOptions(renderer.WithNodeRenderers(util.Prioritized(safeRenderer{}, 100))),
	)
	policy = newPolicy()
)

// newPolicy allows exactly what the renderer emits, nothing more: no
// images, no ids or names (they could clobber the page's own elements),
// no style, and links only with the schemes we link to. The one relative
// link is a mention's.
func newPolicy() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.AllowElements("p", "br", "hr", "em", "strong", "del", "code", "pre", "blockquote",
		"ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a")
	p.AllowAttrs("start").Matching(regexp.MustCompile(`^[0-9]{1,9}$`)).OnElements("ol")
	p.AllowAttrs("class").Matching(regexp.MustCompile(`^language-[A-Za-z0-9_+#.-]{1,40}$`)).OnElements("code")
	p.AllowAttrs("class").Matching(regexp.MustCompile(`^mention$`)).OnElements("a")
	p.AllowAttrs("rel").Matching(regexp.MustCompile(`^` + linkRel + `$`)).OnElements("a")
	p.AllowAttrs("href", "title").OnElements("a")
	p.RequireParseableURLs(true)
	p.AllowURLSchemes("http", "https", "mailto")
	p.AllowRelativeURLs(true)
	return p
}

// linkRel goes on every link to elsewhere: not endorsed (nofollow),
// written by a user (ugc), and no window.opener for the target.
const linkRel = "nofollow ugc noopener"

// Doc is parsed Markdown waiting for its mentions to be resolved. It is
// not safe for concurrent use.
type Doc struct {
	src      []byte
	root     ast.Node
	mentions []*mention
}

// Parse reads Markdown. It never fails: any text is some Markdown.
func Parse(src string) *Doc {
	d := &Doc{src: []byte(src)}
	d.root = converter.Parser().Parse(text.NewReader(d.src))
	_ = ast.Walk(d.root, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if m, ok := n.(*mention); ok && entering && !insideLink(m) {
			d.mentions = append(d.mentions, m)
		}
		return ast.WalkContinue, nil
	})
	return d
}

// Mentions lists the names written as @name, outside code and links,
// lower-cased (usernames are unique regardless of case) and each once,
// in order of first appearance.
func (d *Doc) Mentions() []string {
	var names []string
	seen := map[string]bool{}
	for _, m := range d.mentions {
		k := strings.ToLower(m.name)
		if !seen[k] {
			seen[k] = true
			names = append(names, k)
		}
	}
	return names
}

// HTML renders the document. users maps a lower-cased mentioned name to
// the username as registered: those mentions link to
// /t/{tenant}/u/{username}; the others stay text.
func (d *Doc) HTML(tenant string, users map[string]string) string {
	for _, m := range d.mentions {
		m.username = users[strings.ToLower(m.name)]
		m.tenant = tenant
	}
	var buf bytes.Buffer
	// Rendering writes to memory and every node kind has a renderer that
	// cannot fail: there is no error to meet here.
	_ = converter.Renderer().Render(&buf, d.src, d.root)
	return strings.TrimRight(policy.Sanitize(buf.String()), "\n")
}
