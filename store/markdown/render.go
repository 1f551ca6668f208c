package markdown

import (
	"bytes"
	"net/url"

	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/renderer/html"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// mention is @name in running text. username and tenant are set when the
// name belongs to a user of the tenant; otherwise it renders as text.
type mention struct {
	ast.BaseInline
	name     string
	username string
	tenant   string
}

var kindMention = ast.NewNodeKind("Mention")

func (m *mention) Kind() ast.NodeKind { return kindMention }

func (m *mention) Dump(source []byte, level int) {
	ast.DumpHelper(m, source, level, map[string]string{"Name": m.name}, nil)
}

// Usernames are ^[A-Za-z0-9_]{3,32}$.
const (
	minName = 3
	maxName = 32
)

func isNameByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// mentionParser reads @name. Code spans and blocks never reach inline
// parsers, so a name there stays code.
type mentionParser struct{}

func (mentionParser) Trigger() []byte { return []byte{'@'} }

func (mentionParser) Parse(_ ast.Node, block text.Reader, _ parser.Context) ast.Node {
	// In the middle of a word (user@example, a/@b) an @ is no mention.
	if prev := block.PrecendingCharacter(); prev < 0x80 && (isNameByte(byte(prev)) || bytes.ContainsRune([]byte("@/.+-&\\"), prev)) {
		return nil
	}
	line, _ := block.PeekLine()
	n := 1
	for n < len(line) && isNameByte(line[n]) {
		n++
	}
	if l := n - 1; l < minName || l > maxName {
		return nil
	}
	block.Advance(n)
	return &mention{name: string(line[1:n])}
}

// insideLink: a mention in a link's text, or an image's description,
// stays text (a link in a link is not HTML).
func insideLink(n ast.Node) bool {
	for p := n.Parent(); p != nil; p = p.Parent() {
		switch p.Kind() {
		case ast.KindLink, ast.KindAutoLink, ast.KindImage:
			return true
		}
	}
	return false
}

// safeRenderer renders the node kinds where goldmark's HTML renderer
// would drop the author's text (raw HTML), allow more than we link to, or
// load something (images).
type safeRenderer struct{}

func (safeRenderer) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(ast.KindRawHTML, renderRawHTML)
	reg.Register(ast.KindHTMLBlock, renderHTMLBlock)
	reg.Register(ast.KindLink, renderLink)
	reg.Register(ast.KindAutoLink, renderAutoLink)
	reg.Register(ast.KindImage, renderImage)
	reg.Register(kindMention, renderMention)
}

// renderRawHTML shows inline HTML (<b>, <img ...>) as the text it is.
func renderRawHTML(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if entering {
		segs := node.(*ast.RawHTML).Segments
		for i := range segs.Len() {
			seg := segs.At(i)
			_, _ = w.Write(util.EscapeHTML(seg.Value(source)))
		}
	}
	return ast.WalkSkipChildren, nil
}

// renderHTMLBlock shows a block of HTML as a paragraph of its text.
func renderHTMLBlock(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkContinue, nil
	}
	n := node.(*ast.HTMLBlock)
	var raw []byte
	for i := range n.Lines().Len() {
		seg := n.Lines().At(i)
		raw = append(raw, seg.Value(source)...)
	}
	if n.HasClosure() {
		raw = append(raw, n.ClosureLine.Value(source)...)
	}
	_, _ = w.WriteString("<p>")
	_, _ = w.Write(util.EscapeHTML(bytes.TrimRight(raw, "\r\n")))
	_, _ = w.WriteString("</p>\n")
	return ast.WalkSkipChildren, nil
}

// linkTarget returns the escaped destination when it is a link we make:
// http and https with a host, or mailto with an address.
func linkTarget(dest []byte) ([]byte, bool) {
	u, err := url.Parse(string(dest))
	if err != nil {
		return nil, false
	}
	switch u.Scheme {
	case "http", "https":
		return dest, u.Host != ""
	case "mailto":
		return dest, u.Opaque != ""
	}
	return nil, false
}

func openLink(w util.BufWriter, href, title []byte) {
	_, _ = w.WriteString(`<a href="`)
	_, _ = w.Write(util.EscapeHTML(href))
	_, _ = w.WriteString(`" rel="` + linkRel + `"`)
	if title != nil {
		_, _ = w.WriteString(` title="`)
		html.DefaultWriter.Write(w, title)
		_ = w.WriteByte('"')
	}
	_ = w.WriteByte('>')
}

// renderLink: a link we do not make keeps its text, without the link.
func renderLink(w util.BufWriter, _ []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	n := node.(*ast.Link)
	href, ok := linkTarget(util.URLEscape(n.Destination, true))
	if ok {
		if entering {
			openLink(w, href, n.Title)
		} else {
			_, _ = w.WriteString("</a>")
		}
	}
	return ast.WalkContinue, nil
}

func renderAutoLink(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkContinue, nil
	}
	n := node.(*ast.AutoLink)
	dest := n.URL(source)
	if n.AutoLinkType == ast.AutoLinkEmail && !bytes.HasPrefix(bytes.ToLower(dest), []byte("mailto:")) {
		dest = append([]byte("mailto:"), dest...)
	}
	href, ok := linkTarget(util.URLEscape(dest, false))
	if ok {
		openLink(w, href, nil)
	}
	_, _ = w.Write(util.EscapeHTML(n.Label(source)))
	if ok {
		_, _ = w.WriteString("</a>")
	}
	return ast.WalkSkipChildren, nil
}

// renderImage makes an image a link to it, named by its description (or
// its address when it has none): nothing is loaded from a post.
func renderImage(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkContinue, nil
	}
	n := node.(*ast.Image)
	href, ok := linkTarget(util.URLEscape(n.Destination, true))
	var alt bytes.Buffer
	plainText(&alt, source, n)
	if ok {
		openLink(w, href, n.Title)
	}
	switch {
	case alt.Len() > 0:
		html.DefaultWriter.Write(w, alt.Bytes())
	case ok:
		_, _ = w.Write(util.EscapeHTML(href))
	}
	if ok {
		_, _ = w.WriteString("</a>")
	}
	return ast.WalkSkipChildren, nil
}

// plainText collects the text under n, as goldmark does for an alt.
func plainText(buf *bytes.Buffer, source []byte, n ast.Node) {
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch c := c.(type) {
		case *ast.Text:
			buf.Write(c.Segment.Value(source))
		case *ast.String:
			buf.Write(c.Value)
		case *mention:
			buf.WriteString("@" + c.name)
		default:
			plainText(buf, source, c)
		}
	}
}

func renderMention(w util.BufWriter, _ []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkContinue, nil
	}
	m := node.(*mention)
	if m.username == "" {
		_, _ = w.Write(util.EscapeHTML([]byte("@" + m.name)))
		return ast.WalkContinue, nil
	}
	href := "/t/" + url.PathEscape(m.tenant) + "/u/" + url.PathEscape(m.username)
	_, _ = w.WriteString(`<a class="mention" href="`)
	_, _ = w.Write(util.EscapeHTML([]byte(href)))
	_, _ = w.WriteString(`">@`)
	_, _ = w.Write(util.EscapeHTML([]byte(m.username)))
	_, _ = w.WriteString(`</a>`)
	return ast.WalkContinue, nil
}
