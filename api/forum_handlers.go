package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"agora/store"
)

func (s *Server) listBoards(c echo.Context) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := s.cfg.Store.ListBoards(c.Request().Context(), tenantOf(c).ID, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

type boardRequest struct {
	Name        string `json:"name"`
	Slug        string `json:"slug"`
	Description string `json:"description"`
}

func (s *Server) createBoard(c echo.Context) error {
	var req boardRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	b, err := s.cfg.Store.CreateBoard(c.Request().Context(), tenantOf(c).ID, actorOf(c),
		store.NewBoard{Name: req.Name, Slug: req.Slug, Description: req.Description})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, b)
}

func (s *Server) listPosts(c echo.Context) error {
	return listOf(c, "board", s.cfg.Store.ListPosts)
}

type postRequest struct {
	Title *string `json:"title"`
	Body  *string `json:"body"`
}

func (s *Server) createPost(c echo.Context) error {
	boardID, err := pathID(c, "board")
	if err != nil {
		return err
	}
	var req postRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	p, err := s.cfg.Store.CreatePost(c.Request().Context(), tenantOf(c).ID, actorOf(c), boardID,
		deref(req.Title), deref(req.Body))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, p)
}

func (s *Server) getPost(c echo.Context) error {
	postID, err := pathID(c, "post")
	if err != nil {
		return err
	}
	p, err := s.cfg.Store.GetPost(c.Request().Context(), tenantOf(c).ID, actorOf(c), postID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

func (s *Server) updatePost(c echo.Context) error {
	postID, err := pathID(c, "post")
	if err != nil {
		return err
	}
	var req postRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	p, err := s.cfg.Store.UpdatePost(c.Request().Context(), tenantOf(c).ID, actorOf(c), postID,
		store.PostPatch{Title: req.Title, Body: req.Body})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

func (s *Server) deletePost(c echo.Context) error {
	postID, err := pathID(c, "post")
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeletePost(c.Request().Context(), tenantOf(c).ID, actorOf(c), postID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) listComments(c echo.Context) error {
	return listOf(c, "post", s.cfg.Store.ListComments)
}

type commentRequest struct {
	Body *string `json:"body"`
	// ReplyTo is the id of the comment answered (creation only).
	ReplyTo *string `json:"reply_to"`
}

func (s *Server) createComment(c echo.Context) error {
	postID, err := pathID(c, "post")
	if err != nil {
		return err
	}
	var req commentRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	replyTo, err := replyToID(req.ReplyTo)
	if err != nil {
		return err
	}
	cm, err := s.cfg.Store.CreateReply(c.Request().Context(), tenantOf(c).ID, actorOf(c), postID, replyTo, deref(req.Body))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, cm)
}

// replyToID reads a comment's reply_to: absent or null is 0 (a reply to
// the post); anything that cannot be a comment id is 422, like a comment
// that is not in the post.
func replyToID(raw *string) (int64, error) {
	if raw == nil {
		return 0, nil
	}
	id, err := strconv.ParseInt(*raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, store.Invalid(map[string]string{"reply_to": "must be a comment of this post"})
	}
	return id, nil
}

func (s *Server) updateComment(c echo.Context) error {
	commentID, err := pathID(c, "comment")
	if err != nil {
		return err
	}
	var req commentRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Body == nil {
		return store.Invalid(map[string]string{"body": "required"})
	}
	cm, err := s.cfg.Store.UpdateComment(c.Request().Context(), tenantOf(c).ID, actorOf(c), commentID, *req.Body)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, cm)
}

func (s *Server) deleteComment(c echo.Context) error {
	commentID, err := pathID(c, "comment")
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteComment(c.Request().Context(), tenantOf(c).ID, actorOf(c), commentID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// listPostRevisions and listCommentRevisions answer the edit history to
// its author and the moderators; for anyone else (anonymous readers too)
// it is a 404, as for a post that does not exist.
func (s *Server) listPostRevisions(c echo.Context) error {
	return listOf(c, "post", s.cfg.Store.PostRevisions)
}

func (s *Server) listCommentRevisions(c echo.Context) error {
	return listOf(c, "comment", s.cfg.Store.CommentRevisions)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// listOf answers one keyset page of what belongs to the object that the
// path parameter param names (a board's posts, a post's comments, ...).
func listOf[T any](c echo.Context, param string,
	list func(ctx context.Context, tenantID int64, actor store.Actor, id int64, p store.PageParams) (store.Page[T], error)) error {
	id, err := pathID(c, param)
	if err != nil {
		return err
	}
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := list(c.Request().Context(), tenantOf(c).ID, actorOf(c), id, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}
