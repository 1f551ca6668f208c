package store

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Report statuses.
const (
	ReportOpen     = "open"
	ReportResolved = "resolved"
)

// Report is a member's flag on a post or comment, and what became of it.
type Report struct {
	ID         int64   `json:"id,string"`
	Reporter   UserRef `json:"reporter"`
	TargetType string  `json:"target_type"`
	TargetID   int64   `json:"target_id,string"`
	// PostID is the post the target lives in (the target itself for a
	// post), so a client can open it; nil once the target is deleted.
	PostID     *int64     `json:"post_id,string"`
	Reason     string     `json:"reason"`
	Status     string     `json:"status"`
	Note       *string    `json:"note"`
	ResolvedBy *UserRef   `json:"resolved_by"`
	ResolvedAt *time.Time `json:"resolved_at"`
	CreatedAt  time.Time  `json:"created_at"`
}

// NewReport is what a member supplies to report something.
type NewReport struct {
	TargetType string
	TargetID   int64
	Reason     string
}

const reportColumns = `r.id, r.reporter_id, ru.username, r.target_type, r.target_id,
	CASE r.target_type WHEN 'post' THEN rp.id ELSE rc.post_id END,
	r.reason, r.status, r.note, r.resolved_by, rb.username, r.resolved_at, r.created_at`

// reportFrom joins what a report shows. The target is a loose reference
// (a post or a comment), so it is joined per type and may be gone.
const reportFrom = ` FROM reports r
	JOIN users ru ON ru.tenant_id = r.tenant_id AND ru.id = r.reporter_id
	LEFT JOIN users rb ON rb.tenant_id = r.tenant_id AND rb.id = r.resolved_by
	LEFT JOIN posts rp ON r.target_type = 'post' AND rp.tenant_id = r.tenant_id AND rp.id = r.target_id
	LEFT JOIN comments rc ON r.target_type = 'comment' AND rc.tenant_id = r.tenant_id AND rc.id = r.target_id`

func scanReport(row pgx.CollectableRow) (Report, error) {
	var r Report
	var byID *int64
	var byName *string
	err := row.Scan(&r.ID, &r.Reporter.ID, &r.Reporter.Username, &r.TargetType, &r.TargetID, &r.PostID,
		&r.Reason, &r.Status, &r.Note, &byID, &byName, &r.ResolvedAt, &r.CreatedAt)
	if byID != nil && byName != nil {
		r.ResolvedBy = &UserRef{ID: *byID, Username: *byName}
	}
	if r.ResolvedAt != nil {
		t := r.ResolvedAt.UTC()
		r.ResolvedAt = &t
	}
	r.CreatedAt = r.CreatedAt.UTC()
	return r, err
}

func getReport(ctx context.Context, tx *Tx, reportID int64) (Report, error) {
	rows, err := tx.Query(ctx, `SELECT `+reportColumns+reportFrom+` WHERE r.id = $1`, reportID)
	if err != nil {
		return Report{}, mapErr(err, "report")
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanReport)
	return r, mapErr(err, "report")
}

// CreateReport files a report. The target must be something the reporter
// can see (a hidden post is not found, as everywhere else), and a reporter
// has at most one open report per target.
func (db *DB) CreateReport(ctx context.Context, tenantID int64, actor Actor, nr NewReport) (Report, error) {
	if err := canWrite(actor); err != nil {
		return Report{}, err
	}
	fields := map[string]string{}
	if nr.TargetType != "post" && nr.TargetType != "comment" {
		fields["target_type"] = "must be post or comment"
	}
	checkText(fields, "reason", nr.Reason, maxReason)
	if len(fields) > 0 {
		return Report{}, Invalid(fields)
	}
	return inTenant(ctx, db, tenantID, func(tx *Tx) (Report, error) {
		var r Report
		var err error
		if nr.TargetType == "post" {
			_, err = getPost(ctx, tx, actor, nr.TargetID, false)
		} else {
			_, _, err = getComment(ctx, tx, actor, nr.TargetID, false)
		}
		if err != nil {
			return r, err
		}
		var id int64
		err = tx.QueryRow(ctx, `
			INSERT INTO reports (tenant_id, reporter_id, target_type, target_id, reason)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			tenantID, actor.UserID, nr.TargetType, nr.TargetID, nr.Reason).Scan(&id)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return r, Errorf(CodeConflict, "you already have an open report on this %s", nr.TargetType)
		}
		if err != nil {
			return r, mapErr(err, "report")
		}
		r, err = getReport(ctx, tx, id)
		return r, err
	})
}

// ListReports pages through reports with one status, newest first
// (moderators).
func (db *DB) ListReports(ctx context.Context, tenantID int64, actor Actor, status string, pp PageParams) (Page[Report], error) {
	if err := canModerate(actor); err != nil {
		return Page[Report]{}, err
	}
	if status != ReportOpen && status != ReportResolved {
		return Page[Report]{}, Invalid(map[string]string{"status": "must be open or resolved"})
	}
	before := int64(1<<63 - 1)
	if pp.Cursor != "" {
		if err := decodeCursor(pp.Cursor, &before); err != nil {
			return Page[Report]{}, err
		}
	}
	var items []Report
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+reportColumns+reportFrom+`
			WHERE r.status = $1 AND r.id < $2
			ORDER BY r.id DESC LIMIT $3`, status, before, pp.Limit+1)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, scanReport)
		return err
	})
	if err != nil {
		return Page[Report]{}, mapErr(err, "reports")
	}
	return page(items, pp.Limit, func(r Report) any { return r.ID }), nil
}

// ResolveReport closes an open report with a note (moderators) and logs
// it. A resolved report stays as it was resolved: resolving it again is a
// conflict, so the record of who resolved it and why is never overwritten.
func (db *DB) ResolveReport(ctx context.Context, tenantID int64, actor Actor, reportID int64, note string) (Report, error) {
	if err := canModerate(actor); err != nil {
		return Report{}, err
	}
	if utf8.RuneCountInString(note) > maxReason {
		return Report{}, Invalid(map[string]string{"note": "must be at most 1000 characters"})
	}
	return inTenant(ctx, db, tenantID, func(tx *Tx) (Report, error) {
		var r Report
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM reports WHERE id = $1 FOR UPDATE`, reportID).Scan(&status)
		if err != nil {
			return r, mapErr(err, "report")
		}
		if status != ReportOpen {
			return r, Errorf(CodeConflict, "the report is already resolved")
		}
		if _, err := tx.Exec(ctx, `
			UPDATE reports SET status = 'resolved', note = $2, resolved_by = $3, resolved_at = now()
			WHERE id = $1`, reportID, note, actor.UserID); err != nil {
			return r, mapErr(err, "report")
		}
		if r, err = getReport(ctx, tx, reportID); err != nil {
			return r, err
		}
		if err := writeAudit(ctx, tx, tenantID, actor, auditRecord{
			Action: AuditReportResolve, TargetType: "report", TargetID: reportID, Reason: note,
			Before: map[string]string{"status": ReportOpen},
			After:  map[string]string{"status": ReportResolved, "note": note},
		}); err != nil {
			return r, err
		}
		return r, notifyResolved(ctx, tx, tenantID, actor, r)
	})
}
