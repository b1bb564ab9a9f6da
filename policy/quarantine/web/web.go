// Package web is the quarantine's review page: plain net/http and
// html/template, no JavaScript at all.
//
// Who may see what. An admin signs in with a password (bcrypt hash in the
// configuration; failed attempts are rate-limited per client address). A
// user signs in through a signed link from the digest (valid 7 days) and
// sees only items addressed to them, and only their own recipients' state.
// Sessions are signed cookies (HttpOnly, SameSite=Strict).
//
// Every action is a POST behind a confirmation page, because link
// scanners and mail security gateways prefetch every GET in a mail: even
// the digest's sign-in link only shows a button. Non-safe cross-origin
// requests are refused with net/http.CrossOriginProtection (Sec-Fetch-Site
// and Origin, the Fetch Metadata request headers), and every page carries
// a strict Content-Security-Policy (default-src 'none'). The HTML of a
// message is sanitised with bluemonday, remote images are removed (a
// "web bug" tells the sender the message was read), and it is shown in a
// sandboxed frame whose policy allows no script and no remote load.
//
// "Release and allow sender" and "Deny sender" put the envelope sender on
// the acting user's own list (an admin's: every recipient's of the item);
// "My lists" (/lists) shows a user theirs, with a Remove button (a POST
// form on the page itself), and an admin anyone's.
//
// The page listens on loopback over plain HTTP by default; sites put
// their HTTPS proxy in front (set Secure for the cookies then).
package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/mailwarden/mailwarden/policy/quarantine"
	"golang.org/x/crypto/bcrypt"
)

//go:embed templates/*.html static/style.css
var files embed.FS

// Config builds a Handler.
type Config struct {
	Q      *quarantine.Quarantine
	Signer *quarantine.Signer
	// AdminHash is the bcrypt hash of the admin password; empty disables
	// the admin sign-in.
	AdminHash []byte
	// Now is the clock; nil means the quarantine's.
	Now func() time.Time
	// SessionTTL is how long a sign-in lasts; default 12 hours.
	SessionTTL time.Duration
	// Secure marks the cookies Secure (the page is behind HTTPS).
	Secure bool
	// Base is the path the page is mounted at, "/" by default.
	Base string
	// LoginLimit failed admin sign-ins per LoginWindow and client
	// address; defaults 5 per 15 minutes.
	LoginLimit  int
	LoginWindow time.Duration
	// Learn feeds a message to Bayes as spam or ham; nil hides the
	// actions.
	Learn func(ctx context.Context, msg io.Reader, spam bool) error
	// SenderLists offers "release and allow sender", "deny sender" and
	// the "My lists" page (the recipients' own sender lists, kept in the
	// quarantine's index and read by the daemon for every message).
	SenderLists bool
	// TrustedOrigins are origins (scheme://host[:port]) allowed to POST,
	// when a proxy rewrites the Host header.
	TrustedOrigins []string
	Logger         *slog.Logger
}

// Handler serves the page.
type Handler struct {
	cfg  Config
	tmpl *template.Template
	h    http.Handler

	mu       sync.Mutex
	failures map[string][]time.Time
}

// New returns the page's handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Q == nil || cfg.Signer == nil {
		return nil, errors.New("quarantine/web: needs the quarantine and a signer")
	}
	if cfg.Now == nil {
		cfg.Now = cfg.Q.Now
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Base == "" {
		cfg.Base = "/"
	}
	if !strings.HasSuffix(cfg.Base, "/") {
		cfg.Base += "/"
	}
	if cfg.LoginLimit == 0 {
		cfg.LoginLimit = 5
	}
	if cfg.LoginWindow == 0 {
		cfg.LoginWindow = 15 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, failures: map[string][]time.Time{}}
	var err error
	h.tmpl, err = template.New("").Funcs(template.FuncMap{
		"fmtTime": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
		"join":    strings.Join,
		"strs":    func(s ...string) []string { return s },
	}).ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.list)
	mux.HandleFunc("GET /static/style.css", h.style)
	mux.HandleFunc("GET /login", h.loginForm)
	mux.HandleFunc("POST /login", h.login)
	mux.HandleFunc("GET /login/{token}", h.linkForm)
	mux.HandleFunc("POST /login/{token}", h.link)
	mux.HandleFunc("POST /logout", h.logout)
	mux.HandleFunc("GET /item/{id}", h.item)
	mux.HandleFunc("GET /item/{id}/html", h.itemHTML)
	mux.HandleFunc("GET /confirm", h.confirm)
	mux.HandleFunc("POST /act", h.act)
	mux.HandleFunc("GET /audit", h.audit)
	mux.HandleFunc("GET /settings", h.settings)
	mux.HandleFunc("POST /settings", h.saveSettings)
	if cfg.SenderLists {
		mux.HandleFunc("GET /lists", h.lists)
		mux.HandleFunc("POST /lists/remove", h.unlist)
	}
	cop := http.NewCrossOriginProtection()
	for _, o := range cfg.TrustedOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			return nil, err
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, http.StatusForbidden, "Cross-origin request refused.")
	}))
	var root http.Handler = mux
	if cfg.Base != "/" {
		root = http.StripPrefix(strings.TrimSuffix(cfg.Base, "/"), mux)
	}
	h.h = cop.Handler(root)
	return h, nil
}

// csp is the policy of every page but the message's HTML: nothing but our
// own style sheet, our own forms and our own frame.
const csp = "default-src 'none'; style-src 'self'; img-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	// The sign-in link carries its token in the path: never send it on.
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Frame-Options", "DENY")
	h.h.ServeHTTP(w, r)
}

// NewServer returns an http.Server for the page with timeouts against
// slow clients.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr: addr, Handler: h,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 64 << 10,
	}
}

func (h *Handler) style(w http.ResponseWriter, r *http.Request) {
	b, _ := files.ReadFile("static/style.css")
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=3600")
	w.Write(b)
}

// page is the data of every template.
type page struct {
	Base    string
	Actor   *quarantine.Actor
	Title   string
	Message string
	Lists   bool // the sender lists are offered
	Data    any
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, a *quarantine.Actor, title string, data any) {
	var b bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&b, name, page{Base: h.cfg.Base, Actor: a, Title: title, Lists: h.cfg.SenderLists, Data: data}); err != nil {
		h.cfg.Logger.Error("quarantine page", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	var b bytes.Buffer
	h.tmpl.ExecuteTemplate(&b, "error.html", page{Base: h.cfg.Base, Title: http.StatusText(status), Message: msg})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// failErr maps a quarantine error to a status. Details go to the log.
func (h *Handler) failErr(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, quarantine.ErrNotFound):
		h.fail(w, r, http.StatusNotFound, "No such message.")
	case errors.Is(err, quarantine.ErrForbidden):
		h.fail(w, r, http.StatusForbidden, "You may not do this; ask the postmaster.")
	case errors.Is(err, quarantine.ErrGone):
		h.fail(w, r, http.StatusGone, "This message is no longer stored.")
	default:
		h.cfg.Logger.Error("quarantine page", "path", r.URL.Path, "err", err)
		h.fail(w, r, http.StatusServiceUnavailable, "The quarantine is not available; try again later.")
	}
}

const cookieName = "mailwarden_quarantine"

// actor returns who is signed in, or nil.
func (h *Handler) actor(r *http.Request) *quarantine.Actor {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	p, err := h.cfg.Signer.VerifyToken("session", c.Value, h.cfg.Now())
	if err != nil {
		return nil
	}
	if p == "admin" {
		return &quarantine.Actor{Name: "admin", Role: quarantine.RoleAdmin}
	}
	if addr, ok := strings.CutPrefix(p, "user:"); ok && addr != "" {
		return &quarantine.Actor{Name: addr, Role: quarantine.RoleUser, Addrs: []string{addr}}
	}
	return nil
}

// signedIn returns the actor or sends the visitor to the sign-in page.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request) *quarantine.Actor {
	a := h.actor(r)
	if a == nil {
		http.Redirect(w, r, h.cfg.Base+"login", http.StatusSeeOther)
	}
	return a
}

func (h *Handler) setSession(w http.ResponseWriter, payload string) {
	exp := h.cfg.Now().Add(h.cfg.SessionTTL)
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: h.cfg.Signer.Token("session", payload, exp), Path: h.cfg.Base,
		MaxAge: int(h.cfg.SessionTTL / time.Second), HttpOnly: true, Secure: h.cfg.Secure,
		SameSite: http.SameSiteStrictMode,
	})
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limited reports whether ip used up its failed sign-ins.
func (h *Handler) limited(ip string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.cfg.Now()
	f := h.failures[ip]
	i := 0
	for i < len(f) && !now.Before(f[i].Add(h.cfg.LoginWindow)) {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(h.failures, ip)
	} else {
		h.failures[ip] = f
	}
	return len(f) >= h.cfg.LoginLimit
}

// maxTracked bounds the failure table; past it, stale entries go.
const maxTracked = 10000

func (h *Handler) failed(ip string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.cfg.Now()
	if len(h.failures) >= maxTracked {
		for k, f := range h.failures {
			if !now.Before(f[len(f)-1].Add(h.cfg.LoginWindow)) {
				delete(h.failures, k)
			}
		}
	}
	h.failures[ip] = append(h.failures[ip], now)
}

func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "login.html", nil, "Sign in", nil)
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	ip := clientIP(r)
	if h.limited(ip) {
		h.cfg.Logger.Warn("quarantine sign-in rate-limited", "client", ip)
		h.fail(w, r, http.StatusTooManyRequests, "Too many failed sign-ins; wait a few minutes.")
		return
	}
	pw := r.PostFormValue("password")
	if len(h.cfg.AdminHash) == 0 || bcrypt.CompareHashAndPassword(h.cfg.AdminHash, []byte(pw)) != nil {
		h.failed(ip)
		h.cfg.Logger.Warn("quarantine sign-in failed", "client", ip)
		h.render(w, r, http.StatusUnauthorized, "login.html", nil, "Sign in", "Wrong password.")
		return
	}
	h.setSession(w, "admin")
	h.cfg.Q.Record(r.Context(), quarantine.Actor{Name: "admin", Role: quarantine.RoleAdmin}, quarantine.ActionLogin, nil, "", ip)
	http.Redirect(w, r, h.cfg.Base, http.StatusSeeOther)
}

var nextRE = regexp.MustCompile(`^item/[0-9a-f]{32}$`)

func (h *Handler) linkForm(w http.ResponseWriter, r *http.Request) {
	addr, err := h.cfg.Signer.VerifyLink(r.PathValue("token"), h.cfg.Now())
	if err != nil {
		h.linkFailed(w, r, err)
		return
	}
	next := r.URL.Query().Get("next")
	if !nextRE.MatchString(next) {
		next = ""
	}
	h.render(w, r, http.StatusOK, "link.html", nil, "Sign in", map[string]string{
		"Addr": addr, "Token": r.PathValue("token"), "Next": next,
	})
}

func (h *Handler) linkFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, quarantine.ErrLinkExpired) {
		h.fail(w, r, http.StatusForbidden, "This link has expired; the next notice brings a new one.")
		return
	}
	h.fail(w, r, http.StatusForbidden, "This link is not valid.")
}

func (h *Handler) link(w http.ResponseWriter, r *http.Request) {
	addr, err := h.cfg.Signer.VerifyLink(r.PathValue("token"), h.cfg.Now())
	if err != nil {
		h.linkFailed(w, r, err)
		return
	}
	h.setSession(w, "user:"+addr)
	a := quarantine.Actor{Name: addr, Role: quarantine.RoleUser, Addrs: []string{addr}}
	h.cfg.Q.Record(r.Context(), a, quarantine.ActionLogin, nil, "", clientIP(r))
	next := r.PostFormValue("next")
	if !nextRE.MatchString(next) {
		next = ""
	}
	http.Redirect(w, r, h.cfg.Base+next, http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: h.cfg.Base, MaxAge: -1, HttpOnly: true,
		Secure: h.cfg.Secure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, h.cfg.Base+"login", http.StatusSeeOther)
}

// row is an item as one actor sees it.
type row struct {
	*quarantine.Item
	Rcpts []quarantine.Recipient // the actor's recipients
	State string                 // summary of their states
}

func view(a *quarantine.Actor, it *quarantine.Item) row {
	rw := row{Item: it}
	counts := map[quarantine.State]int{}
	for _, r := range it.Recipients {
		if a.Role != quarantine.RoleUser || a.Sees(&quarantine.Item{Recipients: []quarantine.Recipient{r}}) {
			rw.Rcpts = append(rw.Rcpts, r)
			counts[r.State]++
		}
	}
	var parts []string
	for _, s := range []quarantine.State{quarantine.StateHeld, quarantine.StateReleased, quarantine.StateDeleted, quarantine.StateExpired} {
		if counts[s] > 0 {
			parts = append(parts, s.String())
		}
	}
	rw.State = strings.Join(parts, ", ")
	return rw
}

type listData struct {
	Rows       []row
	Query      string
	Category   string
	State      string
	Categories []quarantine.Category
	Actions    []actionButton
}

type actionButton struct{ Name, Label string }

func (h *Handler) actions(a *quarantine.Actor) []actionButton {
	b := []actionButton{{"release", "Release"}, {"delete", "Delete"}}
	if h.cfg.SenderLists {
		b = append(b, actionButton{"allow", "Release and allow sender"}, actionButton{"deny", "Deny sender"})
	}
	if h.cfg.Learn != nil {
		b = append(b, actionButton{"learn-ham", "Learn as ham"}, actionButton{"learn-spam", "Learn as spam"})
	}
	return b
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	a := h.signedIn(w, r)
	if a == nil {
		return
	}
	q := r.URL.Query()
	f := quarantine.Filter{Query: q.Get("q"), Limit: 500}
	if c, err := quarantine.ParseCategory(q.Get("category")); err == nil {
		f.Category = c
	}
	st := q.Get("state")
	if st == "" {
		st = "held"
	}
	if s, err := quarantine.ParseState(st); err == nil {
		f.State = s
	}
	items, err := h.cfg.Q.List(r.Context(), *a, f)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	d := listData{Query: f.Query, Category: q.Get("category"), State: st, Categories: quarantine.Categories, Actions: h.actions(a)}
	for _, it := range items {
		d.Rows = append(d.Rows, view(a, it))
	}
	h.render(w, r, http.StatusOK, "list.html", a, "Quarantine", d)
}

type itemData struct {
	row
	Header  string
	Text    string
	HasHTML bool
	Gone    bool
	Actions []actionButton
}

// maxShow is how much of a message the page reads.
const maxShow = 10 << 20

func (h *Handler) item(w http.ResponseWriter, r *http.Request) {
	a := h.signedIn(w, r)
	if a == nil {
		return
	}
	it, err := h.cfg.Q.Get(r.Context(), r.PathValue("id"), *a)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	d := itemData{row: view(a, it), Actions: h.actions(a)}
	_, rc, err := h.cfg.Q.Open(r.Context(), it.ID, *a)
	switch {
	case errors.Is(err, quarantine.ErrGone):
		d.Gone = true
	case errors.Is(err, quarantine.ErrForbidden):
		d.Gone = true // a user's virus item: the envelope only
	case err != nil:
		h.failErr(w, r, err)
		return
	default:
		raw, err := io.ReadAll(io.LimitReader(rc, maxShow))
		rc.Close()
		if err != nil {
			h.failErr(w, r, err)
			return
		}
		p := parse(raw)
		d.Header, d.Text, d.HasHTML = p.header, p.text, p.html != ""
	}
	h.render(w, r, http.StatusOK, "item.html", a, it.Subject, d)
}

// htmlCSP is the policy of a message's sanitised HTML: inline styles and
// data: images, nothing loaded from anywhere, no script (sandbox).
const htmlCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"

func (h *Handler) itemHTML(w http.ResponseWriter, r *http.Request) {
	a := h.signedIn(w, r)
	if a == nil {
		return
	}
	_, rc, err := h.cfg.Q.Open(r.Context(), r.PathValue("id"), *a)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(rc, maxShow))
	rc.Close()
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	w.Header().Set("Content-Security-Policy", htmlCSP)
	w.Header().Set("X-Frame-Options", "SAMEORIGIN")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, "<!doctype html><meta charset=utf-8><title>message</title>")
	io.WriteString(w, sanitize(parse(raw).html))
}

type confirmData struct {
	Action  string
	Label   string
	Rows    []row
	Rcpt    string
	Warning string
}

func (h *Handler) confirm(w http.ResponseWriter, r *http.Request) {
	a := h.signedIn(w, r)
	if a == nil {
		return
	}
	q := r.URL.Query()
	act, err := quarantine.ParseAction(q.Get("action"))
	if err != nil || !h.offered(a, act) {
		h.fail(w, r, http.StatusBadRequest, "Unknown action.")
		return
	}
	d := confirmData{Action: act.String(), Rcpt: q.Get("rcpt")}
	for _, b := range h.actions(a) {
		if b.Name == d.Action {
			d.Label = b.Label
		}
	}
	for _, id := range q["id"] {
		it, err := h.cfg.Q.Get(r.Context(), id, *a)
		if err != nil {
			continue
		}
		if it.Category == quarantine.CategoryVirus && act == quarantine.ActionRelease {
			d.Warning = "This contains a virus. Releasing it delivers the virus; the release is recorded."
		}
		d.Rows = append(d.Rows, view(a, it))
	}
	if len(d.Rows) == 0 {
		h.fail(w, r, http.StatusBadRequest, "No message selected.")
		return
	}
	h.render(w, r, http.StatusOK, "confirm.html", a, "Confirm", d)
}

func (h *Handler) offered(a *quarantine.Actor, act quarantine.Action) bool {
	for _, b := range h.actions(a) {
		if b.Name == act.String() {
			return true
		}
	}
	return false
}

type result struct {
	ID, Subject, Outcome string
	OK                   bool
}

func (h *Handler) act(w http.ResponseWriter, r *http.Request) {
	a := h.signedIn(w, r)
	if a == nil {
		return
	}
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, http.StatusBadRequest, "Bad form.")
		return
	}
	act, err := quarantine.ParseAction(r.PostForm.Get("action"))
	if err != nil || !h.offered(a, act) {
		h.fail(w, r, http.StatusBadRequest, "Unknown action.")
		return
	}
	rcpt := ""
	if a.Role == quarantine.RoleAdmin {
		rcpt = r.PostForm.Get("rcpt")
	}
	var res []result
	status := http.StatusOK
	for _, id := range r.PostForm["id"] {
		err := h.do(r.Context(), a, act, id, rcpt)
		rs := result{ID: id, OK: err == nil, Outcome: "done"}
		if it, gerr := h.cfg.Q.Get(r.Context(), id, *a); gerr == nil {
			rs.Subject = it.Subject
		}
		if err != nil {
			status = http.StatusConflict
			switch {
			case errors.Is(err, quarantine.ErrForbidden):
				status, rs.Outcome = http.StatusForbidden, "not allowed: ask the postmaster"
			case errors.Is(err, quarantine.ErrNotFound):
				status, rs.Outcome = http.StatusNotFound, "no such message, or nothing held for you"
			case errors.Is(err, quarantine.ErrNullSender):
				status, rs.Outcome = http.StatusBadRequest, "a bounce has no sender to list"
			default:
				var te *quarantine.TransitionError
				if errors.As(err, &te) {
					rs.Outcome = "already " + te.From.String()
				} else {
					rs.Outcome = "failed; try again later"
					h.cfg.Logger.Error("quarantine action", "action", act.String(), "id", id, "err", err)
				}
			}
		}
		res = append(res, rs)
	}
	h.render(w, r, status, "done.html", a, "Done", res)
}

// do runs one action on one item.
func (h *Handler) do(ctx context.Context, a *quarantine.Actor, act quarantine.Action, id, rcpt string) error {
	switch act {
	case quarantine.ActionRelease:
		_, err := h.cfg.Q.Release(ctx, id, rcpt, *a)
		return err
	case quarantine.ActionDelete:
		_, err := h.cfg.Q.Delete(ctx, id, rcpt, *a)
		return err
	}
	it, err := h.cfg.Q.Get(ctx, id, *a)
	if err != nil {
		return err
	}
	rcpts := h.rcptsFor(a, it, rcpt)
	if len(rcpts) == 0 {
		return quarantine.ErrNotFound
	}
	for _, rc := range rcpts {
		if err := a.May(act, it, rc); err != nil {
			return err
		}
	}
	switch act {
	case quarantine.ActionAllow:
		// List first: a sender that cannot be listed (the null sender)
		// releases nothing, so the user is not surprised twice.
		for _, rc := range rcpts {
			if err := h.cfg.Q.ListSender(ctx, *a, rc, it.MailFrom, quarantine.ListAllow, it); err != nil {
				return err
			}
		}
		for _, rc := range rcpts {
			if r := it.Recipient(rc); r != nil && r.State == quarantine.StateHeld {
				if _, err := h.cfg.Q.Release(ctx, id, rc, *a); err != nil {
					return err
				}
			}
		}
	case quarantine.ActionDeny:
		for _, rc := range rcpts {
			if err := h.cfg.Q.ListSender(ctx, *a, rc, it.MailFrom, quarantine.ListDeny, it); err != nil {
				return err
			}
		}
	case quarantine.ActionLearnHam, quarantine.ActionLearnSpam:
		_, rc, err := h.cfg.Q.Open(ctx, id, *a)
		if err != nil {
			return err
		}
		defer rc.Close()
		if err := h.cfg.Learn(ctx, rc, act == quarantine.ActionLearnSpam); err != nil {
			return err
		}
		h.cfg.Q.Record(ctx, *a, act, it, "", "")
	default:
		return quarantine.ErrForbidden
	}
	return nil
}

func (h *Handler) rcptsFor(a *quarantine.Actor, it *quarantine.Item, rcpt string) []string {
	if rcpt != "" {
		return []string{rcpt}
	}
	var out []string
	for _, r := range view(a, it).Rcpts {
		out = append(out, r.Addr)
	}
	return out
}

func (h *Handler) audit(w http.ResponseWriter, r *http.Request) {
	a := h.signedIn(w, r)
	if a == nil {
		return
	}
	if a.Role != quarantine.RoleAdmin {
		h.fail(w, r, http.StatusForbidden, "The audit log is for admins.")
		return
	}
	log, err := h.cfg.Q.Audit(r.Context(), 500)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "audit.html", a, "Audit log", log)
}

func (h *Handler) settings(w http.ResponseWriter, r *http.Request) {
	a := h.signedIn(w, r)
	if a == nil {
		return
	}
	if a.Role != quarantine.RoleUser {
		h.fail(w, r, http.StatusBadRequest, "Digest settings are per user.")
		return
	}
	p, err := h.cfg.Q.Index().Pref(r.Context(), a.Addrs[0])
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "settings.html", a, "Settings", p.Digest.String())
}

func (h *Handler) saveSettings(w http.ResponseWriter, r *http.Request) {
	a := h.signedIn(w, r)
	if a == nil {
		return
	}
	f, err := quarantine.ParseFrequency(r.PostFormValue("digest"))
	if err != nil || a.Role != quarantine.RoleUser {
		h.fail(w, r, http.StatusBadRequest, "Bad setting.")
		return
	}
	ix := h.cfg.Q.Index()
	p, err := ix.Pref(r.Context(), a.Addrs[0])
	if err == nil {
		p.Digest = f
		err = ix.SetPref(r.Context(), a.Addrs[0], p)
	}
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	http.Redirect(w, r, h.cfg.Base+"settings", http.StatusSeeOther)
}

type listsData struct {
	Rcpt    string // whose list
	Entries []quarantine.SenderEntry
	Admin   bool
}

// lists is "My lists": the senders a user allowed or denied (an admin
// picks the address with ?rcpt=).
func (h *Handler) lists(w http.ResponseWriter, r *http.Request) {
	a := h.signedIn(w, r)
	if a == nil {
		return
	}
	d := listsData{Admin: a.Role == quarantine.RoleAdmin}
	if a.Role == quarantine.RoleUser {
		d.Rcpt = a.Addrs[0]
	} else {
		d.Rcpt = strings.TrimSpace(r.URL.Query().Get("rcpt"))
	}
	if d.Rcpt != "" {
		var err error
		if d.Entries, err = h.cfg.Q.SenderList(r.Context(), *a, d.Rcpt); err != nil {
			h.failErr(w, r, err)
			return
		}
	}
	h.render(w, r, http.StatusOK, "lists.html", a, "Sender lists", d)
}

// unlist removes a sender from a list. It is a POST from the lists page
// itself (no GET link to prefetch), behind the cross-origin protection.
func (h *Handler) unlist(w http.ResponseWriter, r *http.Request) {
	a := h.signedIn(w, r)
	if a == nil {
		return
	}
	rcpt := r.PostFormValue("rcpt")
	if a.Role == quarantine.RoleUser && rcpt == "" {
		rcpt = a.Addrs[0]
	}
	if err := h.cfg.Q.UnlistSender(r.Context(), *a, rcpt, r.PostFormValue("sender")); err != nil {
		h.failErr(w, r, err)
		return
	}
	to := h.cfg.Base + "lists"
	if a.Role != quarantine.RoleUser {
		to += "?rcpt=" + url.QueryEscape(rcpt)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}
