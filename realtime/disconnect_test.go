package realtime

import (
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDisconnectsMatchAPIDoc holds the table of disconnects against the
// close codes docs/api.md promises clients: every code the server uses is
// documented, and every documented code is one it uses, except 1000 (the
// client's own normal close; the server never ends a session normally).
func TestDisconnectsMatchAPIDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "### Close codes")
	if !ok {
		t.Fatal("docs/api.md has no Close codes section")
	}
	section, _, _ = strings.Cut(section, "\n#")
	documented := map[int]string{}
	for _, m := range regexp.MustCompile(`(?m)^\| (\d{4}) \| ([^|]+) \|`).FindAllStringSubmatch(section, -1) {
		code, _ := strconv.Atoi(m[1])
		documented[code] = strings.TrimSpace(m[2])
	}
	if len(documented) < 5 {
		t.Fatalf("found only %v in docs/api.md's close codes", documented)
	}

	used := map[int]bool{}
	table := reflect.ValueOf(disconnects)
	for i := range table.NumField() {
		name, d := table.Type().Field(i).Name, table.Field(i).Interface().(Disconnect)
		used[d.Code] = true
		if d.Reason == "" {
			t.Errorf("%s has no reason", name)
		}
		if _, ok := documented[d.Code]; !ok {
			t.Errorf("%s closes with %d, which docs/api.md does not list", name, d.Code)
		}
	}
	for code, meaning := range documented {
		if !used[code] && code != 1000 {
			t.Errorf("docs/api.md lists %d (%s), which no disconnect uses", code, meaning)
		}
	}
}
