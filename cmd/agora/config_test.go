package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// A typo in the environment stops the program with the variable's name,
// instead of running with a default the operator did not ask for.
func TestBadEnvironmentIsAUsageError(t *testing.T) {
	for key, value := range map[string]string{
		"AGORA_WS_PING_INTERVAL":    "abc",
		"AGORA_WS_PONG_TIMEOUT":     "30",
		"AGORA_DB_MAX_CONNS":        "sixteen",
		"AGORA_HISTORY_EVENTS":      "1e4",
		"AGORA_RATE_LIMITS":         "maybe",
		"AGORA_HEARTBEAT":           "5 s",
		"AGORA_TENANT_MAX_SESSIONS": "lots",
		"AGORA_HISTORY_MEMORY_MB":   "64MB",
	} {
		t.Run(key, func(t *testing.T) {
			_, _, err := parseConfig("serve", nil, envOf(map[string]string{key: value}), io.Discard)
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("%s=%q: got %v, want a usage error", key, value, err)
			}
			if !strings.Contains(err.Error(), key) {
				t.Errorf("the error %q does not name %s", err, key)
			}
		})
	}
	t.Run("good values", func(t *testing.T) {
		c, _, err := parseConfig("serve", nil, envOf(map[string]string{
			"AGORA_WS_PING_INTERVAL": "5s", "AGORA_WS_PONG_TIMEOUT": "9s", "AGORA_RATE_LIMITS": "false",
			"AGORA_TENANT_MAX_SESSIONS": "250",
		}), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.PingInterval.Seconds() != 5 || c.PongTimeout.Seconds() != 9 || c.RateLimits || c.TenantMaxSessions != 250 {
			t.Errorf("parsed %+v", c)
		}
	})
	t.Run("through main", func(t *testing.T) {
		_, err := runCmd(t, map[string]string{"AGORA_WS_PING_INTERVAL": "abc"}, "serve")
		var ue usageError
		if !errors.As(err, &ue) {
			t.Fatalf("got %v, want a usage error", err)
		}
	})
}

// Every shutdown step runs once, newest first, even when Close is called
// again.
func TestMainCloseRunsEachStepOnce(t *testing.T) {
	var order []int
	m := &Main{}
	for i := range 3 {
		m.onClose(func(context.Context) error { order = append(order, i); return nil })
	}
	_ = m.Close()
	_ = m.Close()
	if len(order) != 3 || order[0] != 2 || order[2] != 0 {
		t.Fatalf("steps ran as %v, want [2 1 0]", order)
	}
}
