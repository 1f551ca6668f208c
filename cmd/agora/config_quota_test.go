package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// The tenant quota and split settings parse strictly, and their defaults
// follow the settings they depend on.
func TestTenantQuotaConfig(t *testing.T) {
	for key, value := range map[string]string{
		"AGORA_TENANT_WRITE_RATE":  "200/s",
		"AGORA_TENANT_WRITE_BURST": "lots",
		"AGORA_TENANT_WRITE_SLOTS": "half",
		"AGORA_TENANT_WRITE_WAIT":  "1",
		"AGORA_SPLIT_RATE_LIMITS":  "sometimes",
	} {
		t.Run(key, func(t *testing.T) {
			_, _, err := parseConfig("serve", nil, envOf(map[string]string{key: value}), io.Discard)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), key) {
				t.Fatalf("%s=%q: got %v, want a usage error naming it", key, value, err)
			}
		})
	}
	for _, args := range [][]string{{"-tenant-write-rate", "-1"}, {"-tenant-write-slots", "-2"}, {"-tenant-write-wait", "0s"}} {
		_, _, err := parseConfig("serve", args, envOf(nil), io.Discard)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
	c, _, err := parseConfig("serve", []string{"-db-max-conns", "40"}, envOf(map[string]string{"AGORA_TENANT_WRITE_RATE": "50"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.TenantWrites != 50 || c.TenantBurst != 250 || c.TenantSlots != 20 || c.TenantWait != time.Second || !c.SplitLimits {
		t.Errorf("defaults: rate %d, burst %d, slots %d, wait %v, split %v; want 50, 250, 20, 1s, true",
			c.TenantWrites, c.TenantBurst, c.TenantSlots, c.TenantWait, c.SplitLimits)
	}
	q := tenantQuota(c, nil)
	if q.Writes.N != 250 || q.Writes.Per != 5*time.Second || q.Slots != 20 {
		t.Errorf("quota %+v, want 250 writes per 5 s (50/s, a burst of 250) and 20 slots", q)
	}
	if off := tenantQuota(config{TenantSlots: 8, TenantWait: time.Second}, nil); off.Writes.N >= 0 {
		t.Errorf("a write rate of 0 should be no budget, got %+v", off.Writes)
	}
}
