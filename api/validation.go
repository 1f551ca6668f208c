package api

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A 422 names its fields in machine terms ({"title": "required"}), for
// programs. Its message is for the person who filled in the form: the
// forum shows it next to the field, so it is written as a sentence about
// what they typed ("The title can't be empty."), built here from the
// fields and the route, in the one place errors leave the server.

// fieldOrder puts the sentences in the order forms ask for the fields.
var fieldOrder = []string{"username", "password", "email", "title", "name", "slug", "body", "description", "reason", "note"}

// textFields are typed by people: empty means "can't be empty", not
// "is required".
var textFields = map[string]bool{"title": true, "body": true, "name": true, "description": true, "reason": true, "note": true, "q": true}

var atMost = regexp.MustCompile(`^must be at most (\d+) characters$`)

// validationMessage is the message of a 422 with these fields, for a
// request to the route template path (c.Path(), e.g.
// /api/v1/t/:tenant/posts/:post/comments).
func validationMessage(path string, fields map[string]string) string {
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	rank := func(f string) int {
		if i := slices.Index(fieldOrder, f); i >= 0 {
			return i
		}
		return len(fieldOrder)
	}
	slices.SortFunc(names, func(a, b string) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	sentences := make([]string, 0, len(names))
	for _, f := range names {
		sentences = append(sentences, fieldSentence(subjectOf(path), f, fields[f]))
	}
	return strings.Join(sentences, " ")
}

// subjectOf names what a route writes, for the fields whose wording
// depends on it (a body is a comment's or a post's).
func subjectOf(path string) string {
	segs := strings.Split(path, "/")
	for i := len(segs) - 1; i >= 0; i-- {
		switch segs[i] {
		case "comments":
			return "comment"
		case "posts":
			return "post"
		case "boards":
			return "board"
		case "tenants":
			return "community"
		}
	}
	return ""
}

// label is how a sentence names a field: "the title", and in the plural
// for limits ("Comments can be at most ...").
func label(subject, field string) (one, many string) {
	switch {
	case field == "body" && subject == "comment":
		return "comment", "Comments"
	case field == "body" && subject == "post":
		return "text of the post", "Posts"
	case field == "name" && subject == "board":
		return "board name", "Board names"
	case field == "name" && subject == "community":
		return "community name", "Community names"
	case field == "email":
		return "email address", "Email addresses"
	case field == "q":
		return "search", "Searches"
	}
	one = strings.ReplaceAll(field, "_", " ")
	return one, capitalize(one) + "s"
}

func fieldSentence(subject, field, why string) string {
	one, many := label(subject, field)
	switch {
	case why == "required" && textFields[field]:
		return "The " + one + " can't be empty."
	case why == "required":
		return "The " + one + " is required."
	case why == "must be an email address":
		return "That doesn't look like an email address."
	}
	if m := atMost.FindStringSubmatch(why); m != nil {
		return many + " can be at most " + groupDigits(m[1]) + " characters."
	}
	if strings.HasPrefix(why, "must ") {
		return "The " + one + " " + why + "."
	}
	// A reason that is a sentence of its own ("you cannot do this to
	// yourself").
	return capitalize(why) + "."
}

// groupDigits writes 20000 as 20,000.
func groupDigits(s string) string {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1000 {
		return s
	}
	var b []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, c)
	}
	return string(b)
}

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}
