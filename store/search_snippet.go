package store

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Snippets are cut and marked here, in Go, from the text PostgreSQL
// matched: the database says which rows match and how well, this says
// where. The words are found the way the migration's search functions
// find them (fold, split, match), closely enough to mark what matched; if
// a match cannot be placed (a token the text search parser glues
// differently), the snippet is the text's beginning without a mark. Every
// character of the text is HTML-escaped; only the <mark> tags are markup.

const (
	snippetRunes = 160 // the length of a snippet, ellipses aside
	snippetLead  = 40  // how much text comes before the first match
)

// cjkRanges are the characters that are words on their own: the list of
// search_split in migrations/0006_search.up.sql. Change both.
var cjkRanges = [][2]rune{
	{0x1100, 0x11FF}, {0x2E80, 0x2FDF}, {0x3005, 0x3007}, {0x3021, 0x3029}, {0x3031, 0x3035},
	{0x3038, 0x303C}, {0x3040, 0x309F}, {0x30A1, 0x30FA}, {0x30FC, 0x30FF}, {0x3100, 0x33FF},
	{0x3400, 0x4DBF}, {0x4E00, 0x9FFF}, {0xA960, 0xA97F}, {0xAC00, 0xD7FF}, {0xF900, 0xFAFF},
	{0xFF66, 0xFFDC}, {0x1B000, 0x1B16F}, {0x20000, 0x3FFFF},
}

// separatorRanges are the punctuation and symbols outside ASCII that fold
// to spaces: the list of search_fold in the same migration. Change both.
var separatorRanges = [][2]rune{
	{0x0080, 0x00BF}, {0x00D7, 0x00D7}, {0x00F7, 0x00F7}, {0x2000, 0x2BFF}, {0x2E00, 0x2E7F},
	{0x3000, 0x3004}, {0x3008, 0x3020}, {0x3030, 0x3030}, {0x303D, 0x303F}, {0x30A0, 0x30A0},
	{0x30FB, 0x30FB}, {0xFE00, 0xFE6F}, {0xFF00, 0xFF65}, {0xFFF0, 0xFFFF}, {0x1F000, 0x1FAFF},
	{0xE0000, 0xE007F},
}

func inRanges(r rune, ranges [][2]rune) bool {
	for _, rg := range ranges {
		if r >= rg[0] && r <= rg[1] {
			return true
		}
	}
	return false
}

// runeClass says what a folded rune is to the tokenizer.
type runeClass int

const (
	classBreak runeClass = iota // between words
	classWord                   // part of a word
	classCJK                    // a word by itself
)

// classOf mirrors PostgreSQL's default text search parser on folded text:
// ASCII letters and digits make words, other ASCII separates them, and in
// a C-locale database every other character is a letter (search_fold has
// turned punctuation and symbols into spaces by then).
func classOf(r rune) runeClass {
	switch {
	case r < 0x80:
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return classWord
		}
		return classBreak
	case unicode.IsSpace(r) || unicode.IsControl(r) || inRanges(r, separatorRanges):
		return classBreak
	case inRanges(r, cjkRanges):
		return classCJK
	}
	return classWord
}

// folded is a text after folding, each rune with the index of the rune of
// the original text it came from.
type folded struct {
	runes []rune
	from  []int
}

// fold does what search_fold does before splitting: NFKC, then lower case.
// It works rune by rune, so that a match can be mapped back to the
// original text; a combining sequence that NFKC would compose stays
// decomposed and is then not marked. Lowered letter by letter, Σ is always
// σ, where lower() makes it ς at the end of a word: ς folds to σ here, so
// that the same words still meet.
func fold(s []rune) folded {
	f := folded{runes: make([]rune, 0, len(s)), from: make([]int, 0, len(s))}
	var enc [utf8.UTFMax]byte
	var buf [32]byte
	add := func(r rune, i int) {
		r = unicode.ToLower(r)
		if r == 'ς' {
			r = 'σ'
		}
		f.runes = append(f.runes, r)
		f.from = append(f.from, i)
	}
	for i, r := range s {
		n := utf8.EncodeRune(enc[:], r)
		// Most runes (ASCII, nearly all CJK) are their own NFKC form.
		if r < 0x80 || len(norm.NFKC.Properties(enc[:n]).Decomposition()) == 0 {
			add(r, i)
			continue
		}
		out := norm.NFKC.Append(buf[:0], enc[:n]...)
		for len(out) > 0 {
			nr, size := utf8.DecodeRune(out)
			add(nr, i)
			out = out[size:]
		}
	}
	return f
}

// token is one word of a folded text: runes [start, end) of it.
type token struct{ start, end int }

func tokenize(f folded) []token {
	var toks []token
	start := -1
	for i, r := range f.runes {
		c := classOf(r)
		if c != classWord && start >= 0 {
			toks = append(toks, token{start, i})
			start = -1
		}
		switch {
		case c == classCJK:
			toks = append(toks, token{i, i + 1})
		case c == classWord && start < 0:
			start = i
		}
	}
	if start >= 0 {
		toks = append(toks, token{start, len(f.runes)})
	}
	return toks
}

// termBreak: where search_query splits a query into terms (whitespace,
// and the punctuation search_fold turns into it).
func termBreak(r rune) bool {
	return unicode.IsSpace(r) || r >= 0x80 && (unicode.IsControl(r) || inRanges(r, separatorRanges))
}

// searchTerms splits a query as search_query does: terms at spaces, each
// term the folded words that must occur in a row.
func searchTerms(q string) [][]string {
	f := fold([]rune(q))
	var terms [][]string
	start := 0
	for i := 0; i <= len(f.runes); i++ {
		if i < len(f.runes) && !termBreak(f.runes[i]) {
			continue
		}
		term := folded{runes: f.runes[start:i]}
		var words []string
		for _, t := range tokenize(term) {
			words = append(words, string(term.runes[t.start:t.end]))
		}
		if len(words) > 0 {
			terms = append(terms, words)
		}
		start = i + 1
	}
	return terms
}

// wordMatches: a query word of three or more characters matches the words
// it begins (the ':*' search_query adds); a shorter one only itself. It
// returns how many runes of the text's word matched.
func wordMatches(word []rune, text []rune) (int, bool) {
	if len(word) > len(text) || len(word) < 3 && len(word) != len(text) {
		return 0, false
	}
	for i, r := range word {
		if text[i] != r {
			return 0, false
		}
	}
	return len(word), true
}

// mark is a match: original runes [start, end), of query term term.
type mark struct{ start, end, term int }

// findMarks finds every place where a term's words occur in a row.
func findMarks(text []rune, terms [][]string) []mark {
	f := fold(text)
	toks := tokenize(f)
	var marks []mark
	for ti, term := range terms {
		words := make([][]rune, len(term))
		for i, w := range term {
			words[i] = []rune(w)
		}
	next:
		for i := 0; i+len(words) <= len(toks); i++ {
			n := 0
			for j, w := range words {
				t := toks[i+j]
				var ok bool
				if n, ok = wordMatches(w, f.runes[t.start:t.end]); !ok {
					continue next
				}
			}
			last := toks[i+len(words)-1]
			marks = append(marks, mark{start: f.from[toks[i].start], end: f.from[last.start+n-1] + 1, term: ti})
		}
	}
	sort.Slice(marks, func(i, j int) bool { return marks[i].start < marks[j].start })
	return marks
}

// distinctTerms counts the terms that have a mark.
func distinctTerms(marks []mark) int {
	seen := map[int]bool{}
	for _, m := range marks {
		seen[m.term] = true
	}
	return len(seen)
}

// postSnippet cuts a post's snippet from its body, or from its title when
// the title has more of the terms (a post found by its title alone).
func postSnippet(title, body string, terms [][]string) string {
	tr, br := []rune(title), []rune(body)
	tm, bm := findMarks(tr, terms), findMarks(br, terms)
	if distinctTerms(tm) > distinctTerms(bm) {
		return render(tr, tm)
	}
	return render(br, bm)
}

// snippet cuts a comment's snippet.
func snippet(text string, terms [][]string) string {
	r := []rune(text)
	return render(r, findMarks(r, terms))
}

// render cuts the window with the most distinct terms (the earliest of
// equals), escapes it and marks the matches in it. The windows begin a
// little before each match in turn; the marks inside one are counted as the
// window slides, so a word found thousands of times costs no more than
// reading them.
func render(text []rune, marks []mark) string {
	from, to := 0, len(text)
	if len(text) > snippetRunes {
		counts := map[int]int{}
		best, lo, hi := -1, 0, 0
		for _, m := range marks {
			start := max(0, m.start-snippetLead)
			for ; hi < len(marks) && marks[hi].start < start+snippetRunes; hi++ {
				counts[marks[hi].term]++
			}
			for ; lo < hi && marks[lo].start < start; lo++ {
				if counts[marks[lo].term]--; counts[marks[lo].term] == 0 {
					delete(counts, marks[lo].term)
				}
			}
			if len(counts) > best {
				best, from = len(counts), start
			}
		}
		from = wordStart(text, from)
		to = min(len(text), from+snippetRunes)
	}
	var sb strings.Builder
	marks = merge(marks)
	if from > 0 {
		sb.WriteString("…")
	}
	space := false
	pos := from
	emit := func(end int) {
		for ; pos < end; pos++ {
			r := text[pos]
			if unicode.IsSpace(r) || unicode.IsControl(r) {
				space = true
				continue
			}
			if space && sb.Len() > 0 {
				sb.WriteByte(' ')
			}
			space = false
			writeEscaped(&sb, r)
		}
	}
	for _, m := range marks {
		if m.start < from || m.end > to {
			continue // cut by the window
		}
		emit(m.start)
		if space && sb.Len() > 0 {
			sb.WriteByte(' ')
			space = false
		}
		sb.WriteString("<mark>")
		emit(m.end)
		sb.WriteString("</mark>")
	}
	emit(to)
	if to < len(text) {
		sb.WriteString("…")
	}
	return sb.String()
}

// writeEscaped writes a rune as HTML text: the five characters
// html.EscapeString escapes, escaped alike, without a string per rune.
func writeEscaped(sb *strings.Builder, r rune) {
	switch r {
	case '<':
		sb.WriteString("&lt;")
	case '>':
		sb.WriteString("&gt;")
	case '&':
		sb.WriteString("&amp;")
	case '\'':
		sb.WriteString("&#39;")
	case '"':
		sb.WriteString("&#34;")
	default:
		sb.WriteRune(r)
	}
}

// merge joins overlapping marks (sorted by start).
func merge(marks []mark) []mark {
	var out []mark
	for _, m := range marks {
		if n := len(out); n > 0 && m.start < out[n-1].end {
			out[n-1].end = max(out[n-1].end, m.end)
			continue
		}
		out = append(out, m)
	}
	return out
}

// wordStart moves a cut forward to the start of a word when a space is
// near, so that a snippet does not begin with half a word.
func wordStart(text []rune, at int) int {
	if at == 0 {
		return 0
	}
	for i := at; i < len(text) && i < at+15; i++ {
		if unicode.IsSpace(text[i-1]) {
			return i
		}
	}
	return at
}
