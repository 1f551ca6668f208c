package zzexplore

// TEMPORARY exploration helper (to be deleted): screenshots of pages of the
// dev server.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

func TestExplore(t *testing.T) {
	base := os.Getenv("EXPLORE_BASE")
	if base == "" {
		t.Skip()
	}
	alloc, c1 := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath("/usr/bin/chromium"), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()))
	defer c1()
	ctx, c2 := chromedp.NewContext(alloc)
	defer c2()
	chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			fmt.Println("EXC", ev.ExceptionDetails.Text, ev.ExceptionDetails.Exception.Description)
		case *runtime.EventConsoleAPICalled:
			for _, a := range ev.Args {
				fmt.Println("CONSOLE", ev.Type, string(a.Value), a.Description)
			}
		case *log.EventEntryAdded:
			fmt.Println("LOG", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text)
		}
	})
	steps := strings.Split(os.Getenv("EXPLORE_STEPS"), ";")
	root := ctx
	for i, st := range steps {
		ctx, cancel := context.WithTimeout(root, 20*time.Second)
		defer cancel()
		kind, arg, _ := strings.Cut(st, "=")
		var err error
		switch kind {
		case "go":
			err = chromedp.Do(ctx, chromedp.Navigate(base+arg))
		case "js":
			_, err = chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](arg, chromedp.EvalAwaitPromise))
		case "wait":
			_, err = chromedp.Run(ctx, chromedp.Poll[chromedp.Void](arg, chromedp.WithPollingTimeout(10*time.Second)))
		case "click":
			err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(arg)))
		case "size":
			var w, h int64
			fmt.Sscanf(arg, "%dx%d", &w, &h)
			var o []chromedp.EmulateViewportOption
			if w < 600 {
				o = append(o, chromedp.EmulateMobile, chromedp.EmulateScale(2))
			}
			err = chromedp.Do(ctx, chromedp.EmulateViewport(w, h, o...))
		case "shot":
			var png []byte
			png, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
			if err == nil {
				os.WriteFile("/tmp/shots/"+arg+".png", png, 0o644)
			}
		case "dark":
			_, err = chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		case "keys":
			err = chromedp.Do(ctx, chromedp.KeyEvent(arg))
		case "print":
			var s string
			s, err = chromedp.Run(ctx, chromedp.Evaluate[string](arg))
			fmt.Println("PRINT", s)
		}
		if err != nil {
			t.Fatalf("step %d %s: %v", i, st, err)
		}
	}
}
