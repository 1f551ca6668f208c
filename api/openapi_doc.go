package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The OpenAPI 3.1 document of the REST surface. It is written as a table of
// operations (below) plus JSON schemas, and rendered once; openapi_test.go
// checks its paths and methods against the routes Echo actually serves, in
// both directions, so the two cannot drift apart.

// auth says who may call an operation.
type auth int

const (
	authNone      auth = iota // no credentials at all
	authOptional              // anonymous readers welcome (public tenants)
	authUser                  // a signed-in user
	authModerator             // a moderator or admin, not banned
	authAdmin                 // an admin, not banned
	authOperator              // the platform operator token
)

// operation is one method on one path.
type operation struct {
	method, path string
	id, tag      string
	summary      string
	auth         auth
	query        []param
	required     []string // names of query parameters that must be given
	body         string   // request schema name; "" for none
	bodyOptional bool
	status       int    // success status
	result       string // success schema name; "" for no body
	errors       []int  // error statuses besides the ones auth implies
	description  string
}

type param struct {
	name, description string
	schema            map[string]any
}

var pageQuery = []param{
	{"limit", "Page size: 1 to 200, default 50; anything else is 422.", map[string]any{"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
	{"cursor", "The next_cursor of the previous page.", map[string]any{"type": "string"}},
}

func operations() []operation {
	modReason := "ModerationReason"
	var ops []operation
	add := func(o operation) { ops = append(ops, o) }

	// Operations.
	add(operation{method: "GET", path: "/healthz", id: "healthz", tag: "operations", summary: "The process is up.",
		status: 200, result: "Health"})
	add(operation{method: "GET", path: "/readyz", id: "readyz", tag: "operations",
		summary: "The database is reachable and the realtime listener connected.",
		status:  200, result: "Readiness", errors: []int{503},
		description: "Each check maps to \"ok\" or \"unavailable\"; 503 (with the same object) when any fails. " +
			"The database check pings on a connection of its own, so a pool busy with requests is still ready."})
	add(operation{method: "GET", path: "/metrics", id: "metrics", tag: "operations",
		summary: "Prometheus metrics in the text exposition format.", status: 200, result: "text/plain"})
	add(operation{method: "GET", path: "/api/v1/openapi.json", id: "openapi", tag: "operations",
		summary: "This document.", status: 200, result: "object"})

	// Platform.
	add(operation{method: "POST", path: "/api/v1/tenants", id: "createTenant", tag: "platform", auth: authOperator,
		summary: "Create a tenant (community).", body: "NewTenant", status: 201, result: "Tenant", errors: []int{409, 422},
		description: "Disabled (404) when no AGORA_ADMIN_TOKEN is configured."})
	add(operation{method: "GET", path: "/api/v1/tenants", id: "listTenants", tag: "platform", auth: authOperator,
		summary: "List tenants.", query: pageQuery, status: 200, result: "TenantPage",
		description: "Disabled (404) when no AGORA_ADMIN_TOKEN is configured."})

	// Accounts.
	t := "/api/v1/t/{tenant}"
	add(operation{method: "POST", path: t + "/auth/register", id: "register", tag: "accounts",
		summary: "Create an account and sign in. The first user of a tenant becomes its admin.",
		body:    "Registration", status: 201, result: "AuthResponse", errors: []int{409, 422, 429},
		description: "Rate limited per client address. Fields such as role or tenant_id are ignored."})
	add(operation{method: "POST", path: t + "/auth/login", id: "login", tag: "accounts",
		summary: "Sign in.", body: "Login", status: 200, result: "AuthResponse", errors: []int{401, 429},
		description: "A wrong password and an unknown user get the same 401. Failed attempts are rate limited per username and client address, " +
			"counted before the password is checked (and given back when it was right), so concurrent guesses are limited too. " +
			"503 when no password-hashing slot frees up within a few seconds."})
	add(operation{method: "POST", path: t + "/auth/logout", id: "logout", tag: "accounts", auth: authUser,
		summary: "Revoke the token (and close the WebSockets opened with it).", status: 204})
	add(operation{method: "GET", path: t + "/me", id: "me", tag: "accounts", auth: authUser,
		summary: "The signed-in user.", status: 200, result: "User"})
	add(operation{method: "POST", path: t + "/ws/ticket", id: "wsTicket", tag: "accounts", auth: authUser,
		summary: "A single-use, short-lived ticket for opening a WebSocket from a browser.", status: 200, result: "Ticket"})
	add(operation{method: "GET", path: t + "/ws", id: "websocket", tag: "realtime", auth: authOptional,
		summary: "The realtime WebSocket (see API.md for the protocol).",
		query:   []param{{"ticket", "A ticket from ws/ticket, for clients that cannot send headers.", map[string]any{"type": "string"}}},
		status:  101, errors: []int{400, 403, 429},
		description: "Authenticate with a bearer token or ?ticket=; with neither the connection is anonymous and read only. " +
			"All before the upgrade: a request that is not a WebSocket upgrade is 400, a bad token or ticket 401, " +
			"a foreign Origin 403; past the quotas of open WebSockets (20 per user per tenant, the tenant's per instance) " +
			"it is 429 with Retry-After, and while the server shuts down 503 with Retry-After."})

	// Forum.
	add(operation{method: "GET", path: t + "/boards", id: "listBoards", tag: "forum", auth: authOptional,
		summary: "List boards.", query: pageQuery, status: 200, result: "BoardPage"})
	add(operation{method: "POST", path: t + "/boards", id: "createBoard", tag: "forum", auth: authAdmin,
		summary: "Create a board.", body: "NewBoard", status: 201, result: "Board", errors: []int{409, 422}})
	add(operation{method: "GET", path: t + "/boards/{board}/posts", id: "listPosts", tag: "forum", auth: authOptional,
		summary: "List a board's posts: pinned first, then newest activity first.", query: pageQuery,
		status: 200, result: "PostPage", errors: []int{404},
		description: "Hidden posts are left out for members and shown to moderators with hidden: true."})
	add(operation{method: "POST", path: t + "/boards/{board}/posts", id: "createPost", tag: "forum", auth: authUser,
		summary: "Start a thread.", body: "NewPost", status: 201, result: "Post", errors: []int{404, 422, 429}})
	add(operation{method: "GET", path: t + "/posts/{post}", id: "getPost", tag: "forum", auth: authOptional,
		summary: "Read a post.", status: 200, result: "Post", errors: []int{404}})
	add(operation{method: "PATCH", path: t + "/posts/{post}", id: "updatePost", tag: "forum", auth: authUser,
		summary: "Edit a post (its author, or a moderator).", body: "PostPatch", status: 200, result: "Post",
		errors: []int{404, 409, 422, 429}})
	add(operation{method: "DELETE", path: t + "/posts/{post}", id: "deletePost", tag: "forum", auth: authUser,
		summary: "Delete a post and its comments (its author, or a moderator).", status: 204, errors: []int{404, 409, 429}})
	add(operation{method: "GET", path: t + "/posts/{post}/comments", id: "listComments", tag: "forum", auth: authOptional,
		summary: "List a post's comments, oldest first.", query: pageQuery, status: 200, result: "CommentPage", errors: []int{404}})
	add(operation{method: "POST", path: t + "/posts/{post}/comments", id: "createComment", tag: "forum", auth: authUser,
		summary: "Reply to a post, or with reply_to to one of its comments.", body: "NewComment", status: 201, result: "Comment",
		errors: []int{404, 409, 422, 429},
		description: "409 when the post is locked. reply_to must be a comment of this post that the writer can see (else 422). " +
			"Notifies the post's author, the answered comment's author and up to 10 mentioned users in all (reply before mention, one notification each, never the writer). " +
			"Sends comment.created to the post's room and post.activity to its board's room, and marks the post read up to the new comment for its author (read.updated in user:{id})."})
	add(operation{method: "PATCH", path: t + "/comments/{comment}", id: "updateComment", tag: "forum", auth: authUser,
		summary: "Edit a comment (its author, or a moderator).", body: "CommentPatch", status: 200, result: "Comment",
		errors: []int{404, 409, 422, 429}})
	add(operation{method: "DELETE", path: t + "/comments/{comment}", id: "deleteComment", tag: "forum", auth: authUser,
		summary: "Delete a comment (its author, or a moderator).", status: 204, errors: []int{404, 409, 429}})
	add(operation{method: "GET", path: t + "/users/{username}", id: "getUserPage", tag: "forum", auth: authOptional,
		summary: "A user's page: name, role, when they joined, and their newest posts and comments the caller can see.",
		status:  200, result: "UserPage", errors: []int{404},
		description: "username is matched regardless of case. recent holds at most 10 items, newest first; hidden content only for moderators."})
	add(operation{method: "GET", path: t + "/posts/{post}/revisions", id: "listPostRevisions", tag: "forum", auth: authOptional,
		summary: "A post's edit history, oldest first: the original text, then one item per change of title or body.",
		query:   pageQuery, status: 200, result: "RevisionPage", errors: []int{404},
		description: "For the post's author and moderators; for anyone else (anonymous readers too) 404, as for a post that does not exist. " +
			"version is the post's version once that text was saved, so it may skip numbers (moderation bumps it too)."})
	add(operation{method: "GET", path: t + "/comments/{comment}/revisions", id: "listCommentRevisions", tag: "forum", auth: authOptional,
		summary: "A comment's edit history, oldest first: the original text, then one item per change of the body.",
		query:   pageQuery, status: 200, result: "RevisionPage", errors: []int{404},
		description: "For the comment's author and moderators; for anyone else (anonymous readers too) 404."})
	add(operation{method: "GET", path: t + "/search", id: "search", tag: "forum", auth: authOptional,
		summary: "Search post titles and bodies and comment bodies, best match first.",
		query: append([]param{
			{"q", "The words to find: 1 to 200 characters after trimming (else 422).",
				map[string]any{"type": "string", "minLength": 1, "maxLength": 200}},
			{"board", "Only this board's posts and their comments.", map[string]any{"type": "string", "pattern": "^[1-9][0-9]*$"}},
		}, pageQuery...),
		required: []string{"q"}, status: 200, result: "SearchPage", errors: []int{404, 422},
		description: "Every whitespace-separated term must occur; the words of one term in a row. Case is ignored; " +
			"a word of three or more letters also finds the words it begins. Chinese, Japanese and Korean text is matched " +
			"character by character, so 米饭 finds 我喜欢米饭. Hidden posts and comments, and the comments of hidden posts, " +
			"are found by moderators only. 404 when board names no board of this tenant."})
	for _, o := range []struct{ path, id, what string }{
		{t + "/posts/{post}/reactions/{kind}", "Post", "post"},
		{t + "/comments/{comment}/reactions/{kind}", "Comment", "comment"},
	} {
		event := "Sends " + o.what + ".reactions ({id, reactions}, the new counts) to the post's room when it changes something; no version changes. " +
			"Banned users 403; a locked post 409 (moderators excepted); hidden content 404 for members, as for a read; an unknown kind 422. Rate limited per user."
		add(operation{method: "PUT", path: o.path, id: "react" + o.id, tag: "forum", auth: authUser,
			summary: "Add the caller's reaction of this kind to a " + o.what + "; a second PUT changes nothing.",
			status:  200, result: "ReactionState", errors: []int{404, 409, 422, 429}, description: event})
		add(operation{method: "DELETE", path: o.path, id: "unreact" + o.id, tag: "forum", auth: authUser,
			summary: "Take back the caller's reaction of this kind; taking back one the caller does not have is a no-op 200.",
			status:  200, result: "ReactionState", errors: []int{404, 409, 422, 429}, description: event})
	}
	add(operation{method: "PUT", path: t + "/posts/{post}/read", id: "markRead", tag: "forum", auth: authUser,
		summary: "Mark a post read up to a comment (with no body, {} or no comment_id: the newest visible comment now).",
		body:    "ReadMark", bodyOptional: true, status: 204, errors: []int{404, 422},
		description: "Forward only: an older comment than the caller's position is a no-op. A move sends read.updated " +
			"({post_id, last_read_comment_id}) to the caller's room user:{id}. comment_id must be a comment of this post the caller can see (else 422). " +
			"Writing a comment marks the post read up to it. Banned users may mark posts read."})
	add(operation{method: "POST", path: t + "/reports", id: "createReport", tag: "forum", auth: authUser,
		summary: "Report a post or comment to the moderators.", body: "NewReport", status: 201, result: "Report",
		errors:      []int{404, 409, 422, 429},
		description: "The target must exist and be visible to the reporter (else 404). One open report per user and target (else 409)."})

	// Notifications.
	add(operation{method: "GET", path: t + "/me/notifications", id: "listNotifications", tag: "notifications", auth: authUser,
		summary: "The caller's notifications, newest first.",
		query: append([]param{{"unread", "true: unread ones only; false or absent: all.",
			map[string]any{"type": "string", "enum": []string{"true", "false"}}}}, pageQuery...),
		status: 200, result: "NotificationPage", errors: []int{422},
		description: "An item about a post or comment the caller can no longer see (hidden, deleted) keeps its place with an empty excerpt and post title."})
	add(operation{method: "GET", path: t + "/me/notifications/unread_count", id: "unreadCount", tag: "notifications", auth: authUser,
		summary: "How many of the caller's notifications are unread.", status: 200, result: "UnreadCount"})
	add(operation{method: "POST", path: t + "/me/notifications/read", id: "markNotificationsRead", tag: "notifications", auth: authUser,
		summary: "Mark notifications read, by ids or all of them; answers the new unread count.",
		body:    "MarkRead", status: 200, result: "UnreadCount", errors: []int{404, 422},
		description: "404 (and nothing marked) when any id is not one of the caller's notifications; 422 for neither or both of ids and all, " +
			"for more than 200 ids, or for an id that is not one. Already read ones stay as they are. " +
			"Every socket of the caller gets notification.read in its user:{id} room."})

	// Moderation.
	add(operation{method: "GET", path: t + "/mod/reports", id: "listReports", tag: "moderation", auth: authModerator,
		summary: "The report queue, newest first.",
		query: append([]param{{"status", "Which reports (default open).",
			map[string]any{"type": "string", "enum": []string{"open", "resolved"}, "default": "open"}}}, pageQuery...),
		status: 200, result: "ReportPage", errors: []int{422}})
	add(operation{method: "POST", path: t + "/mod/reports/{report}/resolve", id: "resolveReport", tag: "moderation", auth: authModerator,
		summary: "Resolve a report with a note.", body: "ResolveReport", bodyOptional: true, status: 200, result: "Report",
		errors: []int{404, 409, 422}, description: "409 when the report is already resolved."})
	for _, a := range postModActions() {
		add(operation{method: "POST", path: t + "/mod/posts/{post}/" + a, id: a + "Post", tag: "moderation", auth: authModerator,
			summary: strings.ToUpper(a[:1]) + a[1:] + " a post.", body: modReason, bodyOptional: true,
			status: 200, result: "Post", errors: []int{404, 422},
			description: "Bumps the version and sends a post.updated diff; logged as post." + a + ". " +
				"When the post is already in that state nothing is written or sent and the post is returned as it is."})
	}
	for _, a := range commentModActions() {
		add(operation{method: "POST", path: t + "/mod/comments/{comment}/" + a, id: a + "Comment", tag: "moderation", auth: authModerator,
			summary: strings.ToUpper(a[:1]) + a[1:] + " a comment.", body: modReason, bodyOptional: true,
			status: 200, result: "Comment", errors: []int{404, 422},
			description: "Bumps the version and sends a comment.updated diff, and post.activity with the post's new count of visible comments " +
				"to its board's room; logged as comment." + a + ". " +
				"When the comment is already in that state nothing is written or sent."})
	}
	add(operation{method: "GET", path: t + "/mod/users", id: "listMembers", tag: "moderation", auth: authModerator,
		summary: "The tenant's users with their role and ban state, by username (ignoring case).",
		query: append([]param{
			{"q", "Only usernames that start with this, ignoring case.", map[string]any{"type": "string"}},
			{"banned", "true: only users banned now; false or absent: everyone.", map[string]any{"type": "boolean", "default": false}},
		}, pageQuery...),
		status: 200, result: "MemberPage", errors: []int{422}})
	add(operation{method: "POST", path: t + "/mod/users/{user}/ban", id: "banUser", tag: "moderation", auth: authModerator,
		summary: "Ban a user: their writes get 403 and their WebSockets close with 1008 on every instance.",
		body:    "BanRequest", status: 200, result: "User", errors: []int{404, 422},
		description: "Only admins may ban moderators and admins (else 403). Nobody can ban themselves (422). until must be in the future (422)."})
	add(operation{method: "POST", path: t + "/mod/users/{user}/unban", id: "unbanUser", tag: "moderation", auth: authModerator,
		summary: "Lift a ban.", body: modReason, bodyOptional: true, status: 200, result: "User", errors: []int{404, 422},
		description: "Only admins may unban moderators and admins (else 403)."})
	add(operation{method: "PUT", path: t + "/mod/users/{user}/role", id: "setRole", tag: "moderation", auth: authAdmin,
		summary: "Change a user's role.", body: "RoleRequest", status: 200, result: "User", errors: []int{404, 409, 422},
		description: "409 when it would leave the tenant without an admin who is not banned."})
	add(operation{method: "GET", path: t + "/mod/audit", id: "listAudit", tag: "moderation", auth: authModerator,
		summary: "The append-only audit log of moderation and role actions, newest first.", query: pageQuery,
		status: 200, result: "AuditPage"})
	return ops
}

// errorResponses names the shared error responses by status.
var errorNames = map[int]string{
	400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
	413: "PayloadTooLarge", 422: "Unprocessable", 429: "RateLimited", 500: "Internal", 503: "Unavailable",
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

func reactionKind() map[string]any {
	return map[string]any{"type": "string", "enum": []string{"like", "love", "laugh", "wow", "sad", "thanks"}}
}

func renderOperation(o operation) map[string]any {
	op := map[string]any{"operationId": o.id, "tags": []string{o.tag}, "summary": o.summary}
	if o.description != "" {
		op["description"] = o.description
	}
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(o.path, -1) {
		desc := "The " + m[1] + "'s id, in canonical decimal (any other spelling is 404)."
		schema := map[string]any{"type": "string", "pattern": "^[1-9][0-9]*$"}
		switch m[1] {
		case "tenant":
			desc, schema = "The tenant's slug.", map[string]any{"type": "string"}
		case "username":
			desc, schema = "The user's name (any case).", map[string]any{"type": "string"}
		case "kind":
			desc, schema = "A kind of reaction.", reactionKind()
		}
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true,
			"description": desc, "schema": schema})
	}
	for _, q := range o.query {
		params = append(params, map[string]any{"name": q.name, "in": "query", "required": slices.Contains(o.required, q.name),
			"description": q.description, "schema": q.schema})
	}
	keyed := o.method == "POST" && strings.HasPrefix(o.path, "/api/v1/t/") && o.id != "login"
	if keyed {
		params = append(params, map[string]any{"name": headerIdempotencyKey, "in": "header", "required": false,
			"description": "Makes the request safe to retry: the same key from the same caller within 24 h " +
				"answers the first status and body again, with Idempotent-Replayed: true. A different request " +
				"with the key, or one while the first still runs (with Retry-After), is 409.",
			"schema": map[string]any{"type": "string", "minLength": 1, "maxLength": maxIdempotencyKeyLen, "pattern": "^[ -~]+$"}})
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if o.body != "" {
		op["requestBody"] = map[string]any{
			"required": !o.bodyOptional,
			"content":  map[string]any{"application/json": map[string]any{"schema": ref(o.body)}},
		}
	}
	switch o.auth {
	case authNone:
		op["security"] = []any{}
	case authOptional:
		op["security"] = []any{map[string]any{}, map[string]any{"bearer": []string{}}}
	case authOperator:
		op["security"] = []any{map[string]any{"operator": []string{}}}
	default:
		op["security"] = []any{map[string]any{"bearer": []string{}}}
	}

	ok := map[string]any{"description": http.StatusText(o.status)}
	switch o.result {
	case "":
	case "text/plain":
		ok["content"] = map[string]any{"text/plain": map[string]any{"schema": map[string]any{"type": "string"}}}
	case "object":
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
	default:
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": ref(o.result)}}
	}
	if keyed {
		ok["headers"] = map[string]any{headerReplayed: map[string]any{
			"description": "\"true\" on an answer replayed for a repeated Idempotency-Key.",
			"schema":      map[string]any{"type": "string", "enum": []string{"true"}}}}
	}
	responses := map[string]any{strconv.Itoa(o.status): ok}
	codes := append([]int{}, o.errors...)
	if keyed {
		codes = append(codes, 400, 409)
	}
	if strings.HasPrefix(o.path, "/api/v1/t/") {
		codes = append(codes, 404) // unknown tenant
		if o.method != http.MethodGet {
			codes = append(codes, 429) // the tenant's write quota
		}
	}
	if o.body != "" {
		codes = append(codes, 400, 413)
	}
	switch o.auth {
	case authOptional:
		codes = append(codes, 401) // bad token; private tenant
	case authUser:
		codes = append(codes, 401, 403) // 403: banned
	case authModerator, authAdmin:
		codes = append(codes, 401, 403)
	case authOperator:
		codes = append(codes, 401, 404)
	}
	codes = append(codes, 500)
	if strings.HasPrefix(o.path, "/api/v1/") && o.id != "openapi" {
		codes = append(codes, 503) // the database unreachable or overloaded; no hashing slot
	}
	for _, c := range codes {
		responses[strconv.Itoa(c)] = map[string]any{"$ref": "#/components/responses/" + errorNames[c]}
	}
	if o.status == 101 {
		responses["101"] = map[string]any{"description": "Switching Protocols: the WebSocket is open."}
	}
	if o.id == "readyz" {
		responses["503"] = map[string]any{"description": "Not ready.",
			"content": map[string]any{"application/json": map[string]any{"schema": ref("Readiness")}}}
	}
	op["responses"] = responses
	return op
}

func openAPISpec() map[string]any {
	paths := map[string]any{}
	for _, o := range operations() {
		item, _ := paths[o.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[o.path] = item
		}
		item[strings.ToLower(o.method)] = renderOperation(o)
	}
	responses := map[string]any{}
	for status, name := range errorNames {
		desc := http.StatusText(status)
		if status == 429 || status == 503 {
			responses[name] = map[string]any{
				"description": desc + ": wait Retry-After seconds.",
				"headers": map[string]any{"Retry-After": map[string]any{
					"description": "Seconds to wait (at least 1).",
					"schema":      map[string]any{"type": "integer", "minimum": 1}}},
				"content": map[string]any{"application/json": map[string]any{"schema": ref("Error")}},
			}
			continue
		}
		responses[name] = map[string]any{"description": desc,
			"content": map[string]any{"application/json": map[string]any{"schema": ref("Error")}}}
	}
	return map[string]any{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
		"info": map[string]any{
			"title":   "Agora",
			"version": "1",
			"description": "Multi-tenant real-time forum. IDs are opaque strings; times are RFC 3339 in UTC; " +
				"lists take ?limit= and ?cursor= and answer {items, next_cursor}. Every response carries X-Request-Id. " +
				"An object of another tenant is 404 exactly like one that does not exist.",
		},
		"tags": []any{
			map[string]any{"name": "accounts"}, map[string]any{"name": "forum"},
			map[string]any{"name": "moderation", "description": "Moderators and admins of the tenant."},
			map[string]any{"name": "notifications", "description": "The signed-in user's own; nobody else's."},
			map[string]any{"name": "realtime"}, map[string]any{"name": "platform", "description": "The operator."},
			map[string]any{"name": "operations"},
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer":   map[string]any{"type": "http", "scheme": "bearer", "description": "A session token from auth/register or auth/login."},
				"operator": map[string]any{"type": "http", "scheme": "bearer", "description": "AGORA_ADMIN_TOKEN."},
			},
			"responses": responses,
			"schemas":   schemas(),
		},
	}
}

func obj(required []string, props map[string]any) map[string]any {
	o := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func str(desc string) map[string]any {
	s := map[string]any{"type": "string"}
	if desc != "" {
		s["description"] = desc
	}
	return s
}

func nullable(s map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range s {
		out[k] = v
	}
	out["type"] = []string{s["type"].(string), "null"}
	return out
}

func pageOf(item string) map[string]any {
	return obj([]string{"items", "next_cursor"}, map[string]any{
		"items":       map[string]any{"type": "array", "items": ref(item)},
		"next_cursor": nullable(str("Pass as ?cursor= for the next page; null on the last page.")),
	})
}

func schemas() map[string]any {
	id := map[string]any{"type": "string", "pattern": "^[1-9][0-9]*$", "description": "An opaque id."}
	idRef := ref("ID")
	ts := map[string]any{"type": "string", "format": "date-time"}
	boolean := map[string]any{"type": "boolean"}
	integer := map[string]any{"type": "integer"}
	role := map[string]any{"type": "string", "enum": []string{"member", "moderator", "admin"}}
	reason := map[string]any{"type": "string", "maxLength": 1000}
	errorCodes := []string{"bad_request", "unauthorized", "forbidden", "not_found", "conflict",
		"payload_too_large", "unprocessable", "rate_limited", "internal", "unavailable"}
	markdownBody := str("Markdown as the author wrote it (CommonMark, autolinked URLs, ~~strike~~).")
	bodyHTML := str("The server's rendering of body, safe to insert into a page as is: raw HTML shown as text, " +
		"links http, https or mailto only with rel=\"nofollow ugc noopener\", images shown as links, " +
		"@username of a user of the tenant as <a class=\"mention\" href=\"/t/{tenant}/u/{username}\">.")
	editedAt := nullable(map[string]any{"type": "string", "format": "date-time",
		"description": "The last change of title or body; null until one. Moderation does not set it."})
	myReactions := map[string]any{"type": "array", "items": reactionKind(),
		"description": "Signed-in readers only (absent for anonymous readers): the reader's own kinds."}
	auditActions := []string{"post.lock", "post.unlock", "post.pin", "post.unpin", "post.hide", "post.unhide",
		"comment.hide", "comment.unhide", "user.ban", "user.unban", "user.role", "report.resolve"}

	return map[string]any{
		"ID": id,
		"Error": obj([]string{"error"}, map[string]any{
			"error": obj([]string{"code", "message"}, map[string]any{
				"code":    map[string]any{"type": "string", "enum": errorCodes},
				"message": str("For humans: with unprocessable, a sentence per offending field that a form can show next to it."),
				"fields": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"},
					"description": "With unprocessable: what is wrong with each offending field."},
			}),
		}),
		"Health":    obj([]string{"status"}, map[string]any{"status": map[string]any{"const": "ok"}}),
		"Readiness": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
		"Tenant": obj([]string{"id", "slug", "name", "public", "created_at"}, map[string]any{
			"id": idRef, "slug": str(""), "name": str(""), "public": boolean, "created_at": ts}),
		"TenantPage": pageOf("Tenant"),
		"NewTenant": obj([]string{"slug", "name"}, map[string]any{
			"slug": map[string]any{"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,38}$"},
			"name": map[string]any{"type": "string", "minLength": 1, "maxLength": 200}}),
		"UserRef": obj([]string{"id", "username"}, map[string]any{"id": idRef, "username": str("")}),
		"User": obj([]string{"id", "username", "role", "banned", "created_at"}, map[string]any{
			"id": idRef, "username": str(""), "email": str("Present when the account has one."), "role": role,
			"banned": boolean, "ban_reason": str("Present while banned."),
			"banned_until": map[string]any{"type": "string", "format": "date-time",
				"description": "Present while banned until a set time."},
			"created_at": ts}),
		"Member": obj([]string{"id", "username", "role", "banned", "banned_until", "created_at"}, map[string]any{
			"id": idRef, "username": str(""), "role": role,
			"banned": map[string]any{"type": "boolean", "description": "A ban is in force (an expired one is no ban)."},
			"banned_until": nullable(map[string]any{"type": "string", "format": "date-time",
				"description": "The end of a timed ban in force; null when not banned or banned until lifted."}),
			"created_at": ts}),
		"MemberPage": pageOf("Member"),
		"Registration": obj([]string{"username", "password"}, map[string]any{
			"username": map[string]any{"type": "string", "pattern": "^[A-Za-z0-9_]{3,32}$"},
			"password": map[string]any{"type": "string", "minLength": 8, "maxLength": 128},
			"email":    map[string]any{"type": "string", "format": "email"}}),
		"Login": obj([]string{"username", "password"}, map[string]any{"username": str(""), "password": str("")}),
		"AuthResponse": obj([]string{"user", "token"}, map[string]any{
			"user": ref("User"), "token": str("Send as Authorization: Bearer <token>.")}),
		"Ticket": obj([]string{"ticket", "expires_at"}, map[string]any{"ticket": str(""), "expires_at": ts}),
		"Board": obj([]string{"id", "slug", "name", "description", "version", "created_at", "updated_at"}, map[string]any{
			"id": idRef, "slug": str(""), "name": str(""), "description": str(""), "version": integer,
			"created_at": ts, "updated_at": ts}),
		"BoardPage": pageOf("Board"),
		"NewBoard": obj([]string{"name"}, map[string]any{
			"name":        map[string]any{"type": "string", "minLength": 1, "maxLength": 100},
			"slug":        map[string]any{"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"},
			"description": map[string]any{"type": "string", "maxLength": 1000}}),
		"Post": obj([]string{"id", "board_id", "author", "title", "body", "body_html", "version", "comment_count", "locked", "pinned",
			"hidden", "reactions", "created_at", "updated_at", "edited_at"}, map[string]any{
			"id": idRef, "board_id": idRef, "author": ref("UserRef"), "title": str(""), "body": markdownBody, "body_html": bodyHTML,
			"edited_at": editedAt,
			"version":   map[string]any{"type": "integer", "minimum": 1, "description": "Grows by one on every change of title, body, locked, pinned or hidden."},
			"comment_count": map[string]any{"type": "integer", "minimum": 0,
				"description": "The comments a member can see: hidden ones are not counted. Changes no version."},
			"locked": boolean, "pinned": boolean, "hidden": boolean, "reactions": ref("Reactions"),
			"my_reactions": myReactions,
			"last_read_comment_id": nullable(str("Signed-in readers only: the comment up to which they have read the post " +
				"(marked read, or their own comment); null if never.")),
			"unread_comments": map[string]any{"type": "integer", "minimum": 0,
				"description": "Signed-in readers only: visible comments after last_read_comment_id, all of them when never read."},
			"created_at": ts, "updated_at": ts, "last_activity_at": ts}),
		"PostPage": pageOf("Post"),
		"NewPost": obj([]string{"title", "body"}, map[string]any{
			"title": map[string]any{"type": "string", "minLength": 1, "maxLength": 200},
			"body":  map[string]any{"type": "string", "minLength": 1, "maxLength": 20000}}),
		"PostPatch": obj(nil, map[string]any{
			"title": map[string]any{"type": "string", "minLength": 1, "maxLength": 200},
			"body":  map[string]any{"type": "string", "minLength": 1, "maxLength": 20000}}),
		"Comment": obj([]string{"id", "post_id", "reply_to", "author", "body", "body_html", "version", "hidden", "reactions", "created_at", "updated_at", "edited_at"}, map[string]any{
			"id": idRef, "post_id": idRef, "author": ref("UserRef"),
			"reply_to": nullable(str("The comment of the same post this one answers; null for none (or when it was deleted).")), "body": markdownBody, "body_html": bodyHTML, "edited_at": editedAt,
			"version": map[string]any{"type": "integer", "minimum": 1}, "hidden": boolean,
			"reactions": ref("Reactions"), "my_reactions": myReactions,
			"created_at": ts, "updated_at": ts}),
		"Reactions": map[string]any{"type": "object", "propertyNames": reactionKind(),
			"additionalProperties": map[string]any{"type": "integer", "minimum": 1},
			"description":          "Each kind with a count above zero, and its count; {} when none."},
		"ReactionState": obj([]string{"reactions", "my_reactions"}, map[string]any{
			"reactions": ref("Reactions"), "my_reactions": map[string]any{"type": "array", "items": reactionKind()}}),
		"ReadMark":    obj(nil, map[string]any{"comment_id": nullable(str("The newest comment the caller has seen; absent or null: the newest now."))}),
		"CommentPage": pageOf("Comment"),
		"Revision": obj([]string{"version", "body", "edited_by", "edited_at"}, map[string]any{
			"version":   map[string]any{"type": "integer", "minimum": 1, "description": "The object's version once this text was saved."},
			"title":     str("Posts only: the title with this text."),
			"body":      markdownBody,
			"edited_by": ref("UserRef"), "edited_at": ts}),
		"RevisionPage": pageOf("Revision"),
		"NewComment": obj([]string{"body"}, map[string]any{"body": map[string]any{"type": "string", "minLength": 1, "maxLength": 20000},
			"reply_to": nullable(str("The id of a comment of this post to answer."))}),
		"CommentPatch": obj([]string{"body"}, map[string]any{"body": map[string]any{"type": "string", "minLength": 1, "maxLength": 20000}}),
		"NewReport": obj([]string{"target_type", "target_id", "reason"}, map[string]any{
			"target_type": map[string]any{"type": "string", "enum": []string{"post", "comment"}},
			"target_id":   idRef,
			"reason":      map[string]any{"type": "string", "minLength": 1, "maxLength": 1000}}),
		"Report": obj([]string{"id", "reporter", "target_type", "target_id", "post_id", "reason", "status", "note",
			"resolved_by", "resolved_at", "created_at"}, map[string]any{
			"id": idRef, "reporter": ref("UserRef"),
			"target_type": map[string]any{"type": "string", "enum": []string{"post", "comment"}},
			"target_id":   idRef,
			"post_id":     nullable(str("The post the target is in (the target itself for a post); null once the target is deleted.")),
			"reason":      str(""),
			"status":      map[string]any{"type": "string", "enum": []string{"open", "resolved"}},
			"note":        nullable(str("The resolving moderator's note.")),
			"resolved_by": map[string]any{"oneOf": []any{ref("UserRef"), map[string]any{"type": "null"}}},
			"resolved_at": nullable(ts),
			"created_at":  ts}),
		"ReportPage":       pageOf("Report"),
		"ResolveReport":    obj(nil, map[string]any{"note": reason}),
		"ModerationReason": obj(nil, map[string]any{"reason": reason}),
		"BanRequest": obj([]string{"reason"}, map[string]any{
			"reason": map[string]any{"type": "string", "minLength": 1, "maxLength": 1000},
			"until":  map[string]any{"type": "string", "format": "date-time", "description": "When the ban ends (in the future); absent: until unbanned."}}),
		"RoleRequest": obj([]string{"role"}, map[string]any{"role": role, "reason": reason}),
		"AuditEntry": obj([]string{"id", "actor", "action", "target_type", "target_id", "reason", "created_at"}, map[string]any{
			"id": idRef, "actor": ref("UserRef"),
			"action":      map[string]any{"type": "string", "enum": auditActions},
			"target_type": map[string]any{"type": "string", "enum": []string{"post", "comment", "user", "report"}},
			"target_id":   idRef, "reason": str(""),
			"before":     map[string]any{"type": []string{"object", "null"}, "description": "The changed fields before the action."},
			"after":      map[string]any{"type": []string{"object", "null"}, "description": "The changed fields after the action."},
			"created_at": ts}),
		"AuditPage": pageOf("AuditEntry"),
		"SearchResult": obj([]string{"type", "post", "comment_id", "author", "snippet", "created_at"}, map[string]any{
			"type": map[string]any{"type": "string", "enum": []string{"post", "comment"}},
			"post": obj([]string{"id", "title", "board_id"}, map[string]any{"id": idRef, "title": str(""), "board_id": idRef}),
			"comment_id": map[string]any{"oneOf": []any{idRef, map[string]any{"type": "null"}},
				"description": "The comment that matched; null when the post itself did."},
			"author": ref("UserRef"),
			"snippet": str("HTML: the text around the match, escaped, with the matched words in <mark>; " +
				"safe to insert as HTML."),
			"created_at": ts}),
		"SearchPage": pageOf("SearchResult"),
		"PostLink":   obj([]string{"id", "title"}, map[string]any{"id": idRef, "title": str("Empty when the reader can no longer see the post.")}),
		"Notification": obj([]string{"id", "kind", "actor", "post", "comment_id", "excerpt", "detail", "read", "created_at"}, map[string]any{
			"id": idRef,
			"kind": map[string]any{"type": "string", "enum": []string{"reply", "mention", "moderation", "report_resolved", "role", "ban"},
				"description": "reply: a comment on your post or an answer to your comment; mention: @you in a new post or comment; " +
					"moderation: your post or comment was hidden, unhidden or locked; report_resolved: a report you filed; role: your role changed; ban: you were banned or unbanned."},
			"actor":      map[string]any{"oneOf": []any{ref("UserRef"), map[string]any{"type": "null"}}, "description": "Who replied or mentioned you; null for what the staff did."},
			"post":       map[string]any{"oneOf": []any{ref("PostLink"), map[string]any{"type": "null"}}, "description": "What it is about; null for role and ban."},
			"comment_id": nullable(str("The comment it is about, if any.")),
			"excerpt":    str("The start of the text (a ban's reason); empty when the reader can no longer see it."),
			"detail":     nullable(str("moderation: hide, unhide or lock; role: the new role; ban: ban or unban; null otherwise.")),
			"read":       boolean, "created_at": ts}),
		"NotificationPage": pageOf("Notification"),
		"UnreadCount":      obj([]string{"unread_count"}, map[string]any{"unread_count": integer}),
		"MarkRead": obj(nil, map[string]any{
			"ids": map[string]any{"type": "array", "items": idRef, "minItems": 1, "maxItems": 200},
			"all": map[string]any{"const": true}}),
		"RecentItem": obj([]string{"type", "post", "comment_id", "excerpt", "created_at"}, map[string]any{
			"type": map[string]any{"type": "string", "enum": []string{"post", "comment"}},
			"post": ref("PostLink"), "comment_id": nullable(str("Set for a comment.")), "excerpt": str("The start of the text."),
			"created_at": ts}),
		"UserPage": obj([]string{"id", "username", "role", "created_at", "recent"}, map[string]any{
			"id": idRef, "username": str(""), "role": role, "created_at": ts,
			"recent": map[string]any{"type": "array", "maxItems": 10, "items": ref("RecentItem")}}),
	}
}

// renderOpenAPI is the document as served.
func renderOpenAPI() []byte {
	b, err := json.MarshalIndent(openAPISpec(), "", "  ")
	if err != nil {
		panic(fmt.Sprintf("openapi: %v", err)) // a programming error in the tables above
	}
	return b
}
