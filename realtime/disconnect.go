package realtime

import "github.com/gorilla/websocket"

// Disconnect is how a session ended: the close code and reason the client
// got (or, when it closed first, the ones it sent).
type Disconnect struct {
	Code   int
	Reason string
}

// disconnects is every way the server ends a session. docs/api.md's table
// of close codes tells clients the same (TestDisconnectsMatchAPIDoc).
var disconnects = struct {
	// Shutdown: the instance is going away; reconnect elsewhere.
	Shutdown Disconnect
	// Refresh: the user's role changed or their ban was lifted; the client
	// reconnects and gets its new rights.
	Refresh Disconnect
	// InvalidUTF8: a text message was not UTF-8.
	InvalidUTF8 Disconnect
	// Revoked: the session's token was revoked (logout) or has expired.
	Revoked Disconnect
	// Banned: the user was banned.
	Banned Disconnect
	// Flood: too many messages in a row over the rate limit.
	Flood Disconnect
	// TooBig: a message over the size limit.
	TooBig Disconnect
	// Slow: the session fell too far behind; it resumes with since.
	Slow Disconnect
	// Lost: the connection dropped without a close frame.
	Lost Disconnect
}{
	Shutdown:    Disconnect{websocket.CloseGoingAway, "server going away"},
	Refresh:     Disconnect{websocket.CloseGoingAway, "your role changed: reconnect"},
	InvalidUTF8: Disconnect{websocket.CloseInvalidFramePayloadData, "invalid UTF-8"},
	Revoked:     Disconnect{websocket.ClosePolicyViolation, "token revoked"},
	Banned:      Disconnect{websocket.ClosePolicyViolation, "banned"},
	Flood:       Disconnect{websocket.ClosePolicyViolation, "too many messages"},
	TooBig:      Disconnect{websocket.CloseMessageTooBig, "message too big"},
	Slow:        Disconnect{websocket.CloseTryAgainLater, "slow consumer: resume with since"},
	Lost:        Disconnect{websocket.CloseAbnormalClosure, "connection lost"},
}
