package store_test

import (
	"agora/realtime"
	"agora/store"
)

// The store is realtime's history and bus.
var (
	_ realtime.History = (*store.DB)(nil)
	_ realtime.Bus     = (*store.Bus)(nil)
)
