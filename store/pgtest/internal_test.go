package pgtest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// fatalTB records a Fatal call and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestNewDatabaseWithoutMain(t *testing.T) {
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		newDatabase(f, nil, "")
		t.Error("newDatabase returned without a cluster")
	}()
	<-done
	if !strings.Contains(f.msg, "pgtest.Main was not called") {
		t.Errorf("Fatal message %q does not say Main was not called", f.msg)
	}
}

func TestDBName(t *testing.T) {
	for _, tc := range []struct {
		test string
		n    int64
		want string
	}{
		{"TestFoo", 1, "t1_testfoo"},
		{"TestFoo/sub case#01", 12, "t12_testfoo_sub_case_01"},
		{strings.Repeat("X", 100), 3, "t3_" + strings.Repeat("x", 60)},
	} {
		if got := dbName(tc.test, tc.n); got != tc.want {
			t.Errorf("dbName(%q, %d) = %q, want %q", tc.test, tc.n, got, tc.want)
		}
	}
}
