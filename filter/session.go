package filter

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/d--j/go-milter"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

// session is one MTA connection; it may carry several transactions.
type session struct {
	milter.NoOpMilter
	srv   *Server
	proto milter.OptProtocol

	client message.Client
	macros map[string]string // connection-level macros

	// The current transaction, from MAIL FROM to its end.
	tx *transaction
}

type transaction struct {
	p        *policy.Pipeline
	release  func()
	start    time.Time
	auth     string
	macros   map[string]string
	from     string
	rcpts    []string
	header   message.Header
	hdrBytes int64
	tooMany  bool
	spool    spool
	// verdict, when set, was decided before the end of the message (the
	// header grew past max_header_size); EndOfMessage applies it.
	verdict *policy.Verdict
}

func (s *session) Connect(host, family string, port uint16, addr string, m milter.Modifier) (resp *milter.Response, err error) {
	defer s.recover("connect", &resp, &err)
	s.macros = map[string]string{}
	collect(m, s.macros, milter.StageConnect)
	s.client = message.Client{Name: host, Port: port}
	if a, err := netip.ParseAddr(strings.Trim(addr, "[]")); err == nil && (family == "tcp4" || family == "tcp6") {
		s.client.Addr = a.Unmap()
	}
	// QUIRK(postfix): local submissions (sendmail(1), non_smtpd_milters)
	// arrive with family "unknown" and no address; they stay zero, which
	// policy reads as a local submission.
	return milter.RespContinue, nil
}

func (s *session) Helo(name string, m milter.Modifier) (resp *milter.Response, err error) {
	defer s.recover("helo", &resp, &err)
	s.client.HELO = name
	collect(m, s.macros, milter.StageHelo)
	return milter.RespContinue, nil
}

func (s *session) MailFrom(from, esmtpArgs string, m milter.Modifier) (resp *milter.Response, err error) {
	defer s.recover("mail", &resp, &err)
	s.endTx() // a reused connection: forget the previous transaction
	p, release := s.srv.opts.Holder.Acquire()
	cfg := p.Config()
	tx := &transaction{p: p, release: release, start: time.Now(), macros: map[string]string{}, from: milter.RemoveAngle(from)}
	for k, v := range s.macros {
		tx.macros[k] = v
	}
	collect(m, tx.macros, milter.StageMail)
	tx.auth = tx.macros["auth_authen"]
	tx.spool = spool{dir: cfg.Message.TempDir, memLimit: int64(cfg.Message.SpoolMemory), max: s.keepMax(cfg),
		bud: &s.srv.mem, budMax: int64(cfg.Message.MemoryBudget)}
	s.tx = tx
	s.srv.inflight.Add(1)
	return milter.RespContinue, nil
}

func (s *session) RcptTo(rcpt, esmtpArgs string, m milter.Modifier) (resp *milter.Response, err error) {
	defer s.recover("rcpt", &resp, &err)
	if s.tx == nil {
		return milter.RespContinue, nil
	}
	rcpt = milter.RemoveAngle(rcpt)
	collect(m, s.tx.macros, milter.StageRcpt)
	env := &message.Envelope{Client: s.client, Auth: s.tx.auth, Macros: s.tx.macros, MailFrom: s.tx.from, Rcpts: s.tx.rcpts}
	action, reply, _ := s.tx.p.Rcpt(context.Background(), env, rcpt)
	switch action {
	case policy.ActionReject, policy.ActionTempfail:
		return milter.RejectWithCodeAndReason(uint16(reply.Code), replyText(reply))
	}
	s.tx.rcpts = append(s.tx.rcpts, rcpt)
	return milter.RespContinue, nil
}

func (s *session) Header(name, value string, m milter.Modifier) (resp *milter.Response, err error) {
	defer s.recover("header", &resp, &err)
	tx := s.tx
	if tx == nil {
		return milter.RespContinue, nil
	}
	tx.hdrBytes += int64(len(name) + len(value) + 3)
	if tx.verdict != nil {
		return milter.RespContinue, nil // decided; nothing more is kept
	}
	if max := int64(tx.p.Config().Message.MaxHeaderSize); max > 0 && tx.hdrBytes > max {
		return s.headerTooBig(m, tx)
	}
	if len(tx.header) >= tx.p.Config().Message.MaxHeaders {
		tx.tooMany = true
		return milter.RespContinue, nil
	}
	if s.proto&milter.OptHeaderLeadingSpace == 0 && value != "" {
		// QUIRK(sendmail): without SMFIP_HDR_LEADSPC the MTA removed the
		// space after the colon; keep values in one form (with it).
		value = " " + value
	}
	tx.header = append(tx.header, message.Field{Name: name, Value: value})
	return milter.RespContinue, nil
}

func (s *session) BodyChunk(chunk []byte, m milter.Modifier) (resp *milter.Response, err error) {
	defer s.recover("body", &resp, &err)
	tx := s.tx
	if tx == nil {
		return milter.RespContinue, nil
	}
	if tx.verdict != nil {
		if resp, err := s.early(tx); resp != milter.RespContinue || err != nil {
			return resp, err
		}
		if m.Protocol()&milter.OptSkip != 0 {
			return milter.RespSkip, nil
		}
		return milter.RespContinue, nil
	}
	tx.spool.base = tx.hdrBytes
	if err := tx.spool.Write(chunk); err != nil {
		s.srv.opts.Logger.Error("spooling body failed", "error", err)
		return s.fail(m, tx, err.Error())
	}
	if tx.spool.oversize && m.Protocol()&milter.OptSkip != 0 {
		return milter.RespSkip, nil // the rest would be thrown away anyway
	}
	return milter.RespContinue, nil
}

// fail answers with the configured tempfail when we cannot keep the message
// (disk full): never accept what we could not check.
func (s *session) fail(m milter.Modifier, tx *transaction, why string) (*milter.Response, error) {
	r := tx.p.Config().Replies.Tempfail
	s.srv.opts.Logger.Warn("message", "queue_id", tx.macros["i"], "action", "tempfail", "reasons", []string{"internal-error"}, "detail", why)
	s.endTx()
	return milter.RejectWithCodeAndReason(uint16(r.Code), replyText(r))
}

func (s *session) EndOfMessage(m milter.Modifier) (resp *milter.Response, err error) {
	defer s.recover("end-of-message", &resp, &err)
	tx := s.tx
	if tx == nil {
		return milter.RespAccept, nil
	}
	defer s.endTx()
	collect(m, tx.macros, milter.StageEOM)
	cfg := tx.p.Config()
	msg := s.message(tx)
	body := tx.spool.body()
	defer body.Close()
	msg.Body = body
	if tx.verdict != nil {
		// Decided at the header (too big): a quarantine verdict goes to
		// Keep, which leaves it to the MTA's hold queue (nothing was kept).
		qid := s.keep(msg, tx.verdict, cfg)
		resp, err = apply(m, tx.verdict, s.proto&milter.OptHeaderLeadingSpace != 0)
		logSummary(s.srv.opts.Logger, msg, tx.verdict, cfg, time.Since(tx.start), err, qid)
		return resp, err
	}

	// Keep the MTA from timing out while slow checks run (clamd on a big
	// message): milter progress every few seconds.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				m.Progress()
			}
		}
	}()
	v := tx.p.Run(context.Background(), msg)
	qid := s.keep(msg, v, cfg)
	close(stop)
	<-done

	resp, err = apply(m, v, s.proto&milter.OptHeaderLeadingSpace != 0)
	logSummary(s.srv.opts.Logger, msg, v, cfg, time.Since(tx.start), err, qid)
	return resp, err
}

// ReasonQuarantineUnavailable: our quarantine could not keep the message,
// so it was tempfailed.
const ReasonQuarantineUnavailable = "quarantine-unavailable"

// keep hands a quarantine verdict to our own quarantine, before the MTA
// is answered, and turns the verdict into what the MTA must do: remove
// the quarantined recipients (or discard when none is left), keep the
// MTA's hold (hold mode), or tempfail when the copy could not be kept.
// It returns the quarantine item id for the summary line.
func (s *session) keep(msg *message.Message, v *policy.Verdict, cfg *policy.Config) string {
	if s.srv.opts.Quarantine == nil {
		return ""
	}
	switch v.Action {
	case policy.ActionAccept, policy.ActionQuarantine, policy.ActionReject:
		// The recipients' own sender lists may turn any of these into
		// another (see Quarantiner).
	default:
		return ""
	}
	q := s.srv.opts.Quarantine()
	if q == nil {
		return ""
	}
	k, err := q.Keep(context.Background(), cfg, msg, v)
	if err == nil && v.Action != policy.ActionQuarantine {
		return k.ID
	}
	if err != nil {
		s.srv.opts.Logger.Error("quarantine: cannot keep the message; tempfail", "queue_id", msg.QueueID, "error", err)
		v.Action, v.Reply, v.QuarantineReason = policy.ActionTempfail, cfg.Replies.Tempfail, ""
		v.Reasons = append(v.Reasons, ReasonQuarantineUnavailable)
		return ""
	}
	if k.Hold {
		return k.ID
	}
	v.QuarantineReason = ""
	if k.Discard {
		// RFC 5321 §6.1: the client got (gets) 250 and our copy is synced,
		// so dropping the MTA's copy loses nothing.
		v.Action = policy.ActionDiscard
		return k.ID
	}
	v.Action = policy.ActionAccept
	v.DeleteRcpts = append(v.DeleteRcpts, k.DeleteRcpts...)
	return k.ID
}

// keepMax is how much of a message the spool keeps: max_message_size,
// or more when an oversize message is quarantined and our quarantine can
// store bigger ones (its StoreMax): such a message is still not checked
// (Oversize), but it is kept whole so that the quarantine stores it
// rather than leave it to the MTA's hold queue.
func (s *session) keepMax(cfg *policy.Config) int64 {
	max := int64(cfg.MaxMessageSize)
	if cfg.MaxMessageSizeAction != policy.ActionQuarantine || s.srv.opts.Quarantine == nil {
		return max
	}
	if q := s.srv.opts.Quarantine(); q != nil && q.StoreMax() > max {
		return q.StoreMax()
	}
	return max
}

// message is the policy view of the transaction so far (without a body).
func (s *session) message(tx *transaction) *message.Message {
	cfg := tx.p.Config()
	return &message.Message{
		QueueID:  tx.macros["i"],
		Client:   s.client,
		Auth:     tx.auth,
		Macros:   tx.macros,
		MailFrom: tx.from,
		Rcpts:    tx.rcpts,
		Header:   tx.header,
		Oversize: tx.verdict != nil || tx.spool.oversize || tx.tooMany || tx.hdrBytes+tx.spool.size > int64(cfg.MaxMessageSize),
		// The message as received is only ours when every byte was kept.
		Incomplete: tx.verdict != nil || tx.spool.oversize || tx.tooMany,
		Size:       tx.hdrBytes + tx.spool.size,
		Received:   tx.start,
	}
}

// headerTooBig handles the header field that takes a message past
// max_header_size: the header kept so far is dropped (memory is what the
// cap protects), nothing more is kept, and the message is decided at once
// as oversize. A reject, tempfail or discard is answered now; an action
// that needs the end of the message (accept with our header fields,
// quarantine, monitor mode) is applied there, the body skipped.
func (s *session) headerTooBig(m milter.Modifier, tx *transaction) (*milter.Response, error) {
	tx.header = nil
	tx.spool.oversize = true
	tx.spool.discard()
	msg := s.message(tx)
	msg.Oversize = true
	msg.Body = &spoolBody{}
	tx.verdict = tx.p.Run(context.Background(), msg)
	s.srv.opts.Logger.Info("header over max_header_size; decided at once", "queue_id", msg.QueueID, "header_bytes", tx.hdrBytes, "max_header_size", int64(tx.p.Config().Message.MaxHeaderSize), "action", tx.verdict.Action.String())
	if s.proto&milter.OptNoHeaderReply != 0 {
		// QUIRK(postfix): with SMFIP_NOHDR_REPLY negotiated the MTA reads
		// no reply to a header; the first body chunk (or the end) answers.
		return milter.RespContinue, nil
	}
	return s.early(tx)
}

// early answers a verdict decided before the end of the message, if it
// ends the transaction now (reject, tempfail, discard); others wait for
// the end of the message, where header changes and quarantine can apply.
func (s *session) early(tx *transaction) (*milter.Response, error) {
	v := tx.verdict
	switch v.Action {
	case policy.ActionReject, policy.ActionTempfail, policy.ActionDiscard:
	default:
		return milter.RespContinue, nil
	}
	logSummary(s.srv.opts.Logger, s.message(tx), v, tx.p.Config(), time.Since(tx.start), nil, "")
	s.endTx()
	if v.Action == policy.ActionDiscard {
		return milter.RespDiscard, nil
	}
	return milter.RejectWithCodeAndReason(uint16(v.Reply.Code), replyText(v.Reply))
}

func (s *session) Abort(m milter.Modifier) (err error) {
	var resp *milter.Response
	defer s.recover("abort", &resp, &err)
	s.endTx()
	return nil
}

func (s *session) Cleanup(m milter.Modifier) {
	var resp *milter.Response
	var err error
	defer s.recover("cleanup", &resp, &err)
	s.endTx()
}

// recover turns a panic in a callback into an error, which ends this
// connection only (the MTA applies its milter default action to the
// message); it is logged with its stack and counted.
func (s *session) recover(step string, resp **milter.Response, err *error) {
	r := recover()
	if r == nil {
		return
	}
	s.srv.opts.Logger.Error("panic in a milter session; closing that connection", "step", step, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	if s.srv.opts.OnDrop != nil {
		s.srv.opts.OnDrop(DropPanic)
	}
	*resp, *err = nil, fmt.Errorf("filter: panic in %s: %v", step, r)
}

// endTx forgets the transaction: the spool file is removed and the
// pipeline released, whatever happened.
func (s *session) endTx() {
	tx := s.tx
	if tx == nil {
		return
	}
	s.tx = nil
	tx.spool.discard()
	tx.release()
	s.srv.inflight.Add(-1)
}

// apply turns a verdict into milter modifications and the final response.
func apply(m milter.Modifier, v *policy.Verdict, leadSpace bool) (*milter.Response, error) {
	switch v.Action {
	case policy.ActionReject, policy.ActionTempfail:
		return milter.RejectWithCodeAndReason(uint16(v.Reply.Code), replyText(v.Reply))
	case policy.ActionDiscard:
		return milter.RespDiscard, nil
	}
	// Delete from the highest index down, so that earlier deletions cannot
	// shift the numbering of later ones in any MTA.
	dels := append([]policy.HeaderRef(nil), v.Delete...)
	sort.SliceStable(dels, func(i, j int) bool { return dels[i].Index > dels[j].Index })
	for _, d := range dels {
		if err := m.ChangeHeader(d.Index, d.Name, ""); err != nil {
			return nil, err
		}
	}
	// Insert in reverse at position 0 so that v.Prepend ends up on top in
	// order (Authentication-Results first).
	for i := len(v.Prepend) - 1; i >= 0; i-- {
		f := v.Prepend[i]
		if err := m.InsertHeader(0, f.Name, milterValue(f.Value, leadSpace)); err != nil {
			return nil, err
		}
	}
	if v.ChangeFrom != "" {
		if err := m.ChangeFrom(milter.AddAngle(v.ChangeFrom), ""); err != nil {
			return nil, err
		}
	}
	for _, r := range v.AddRcpts {
		if err := m.AddRecipient(milter.AddAngle(r), ""); err != nil {
			return nil, err
		}
	}
	for _, r := range v.DeleteRcpts {
		if err := m.DeleteRecipient(milter.AddAngle(r)); err != nil {
			return nil, err
		}
	}
	if v.Action == policy.ActionQuarantine {
		if err := m.Quarantine(v.QuarantineReason); err != nil {
			return nil, err
		}
	}
	return milter.RespAccept, nil
}

// milterValue prepares a header value for the milter protocol: folds are
// bare LF. With SMFIP_HDR_LEADSPC negotiated the MTA writes the value as
// given, so we supply the space after the colon; without it the MTA adds
// the space itself.
func milterValue(v string, leadSpace bool) string {
	v = strings.TrimLeft(strings.ReplaceAll(v, "\r\n", "\n"), " ")
	if leadSpace {
		return " " + v
	}
	return v
}

func replyText(r policy.Reply) string {
	if r.Enhanced != "" {
		return r.Enhanced + " " + r.Text
	}
	return r.Text
}

// collect copies the macros of a stage into dst, keyed without braces.
func collect(m milter.Modifier, dst map[string]string, stage milter.MacroStage) {
	for _, name := range macroStages[stage] {
		if v, ok := m.GetEx(name); ok {
			dst[strings.Trim(name, "{}")] = v
		}
	}
}

// logSummary writes the one line per message.
func logSummary(log *slog.Logger, m *message.Message, v *policy.Verdict, cfg *policy.Config, d time.Duration, applyErr error, quarantineID string) {
	// Attrs built as such, not as key-value arguments: no boxing of each
	// value, no conversion of the arguments into attrs (once per check).
	checks := make([]slog.Attr, 0, len(v.Checks))
	for _, c := range v.Checks {
		attrs := make([]slog.Attr, 2, 4)
		attrs[0], attrs[1] = slog.String("status", string(c.Status)), slog.Float64("ms", float64(c.Duration.Microseconds())/1000)
		if c.Score != 0 {
			attrs = append(attrs, slog.Float64("score", c.Score))
		}
		if c.Detail != "" {
			attrs = append(attrs, slog.String("detail", c.Detail))
		}
		checks = append(checks, slog.Attr{Key: c.Name, Value: slog.GroupValue(attrs...)})
	}
	client := ""
	if m.Client.Addr.IsValid() {
		client = m.Client.Addr.String()
	}
	rcpts := m.Rcpts
	if rcpts == nil {
		rcpts = []string{}
	}
	reasons := v.Reasons
	if reasons == nil {
		reasons = []string{}
	}
	attrs := make([]slog.Attr, 0, 20)
	attrs = append(attrs,
		slog.String("queue_id", m.QueueID), slog.String("client", client), slog.String("client_name", m.Client.Name), slog.String("helo", m.Client.HELO),
		slog.String("from", m.MailFrom), slog.Any("rcpts", rcpts), slog.String("direction", string(cfg.DirectionOf(m))), slog.Int64("size", m.Size),
		slog.String("mode", string(v.Mode)), slog.String("action", v.Action.String()), slog.String("would_be", v.WouldBe.String()),
		slog.Float64("score", v.Score), slog.Any("reasons", reasons), slog.Attr{Key: "checks", Value: slog.GroupValue(checks...)},
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
	)
	if m.Auth != "" {
		attrs = append(attrs, slog.String("auth", m.Auth))
	}
	if quarantineID != "" {
		attrs = append(attrs, slog.String("quarantine_id", quarantineID))
	}
	if v.Action == policy.ActionReject || v.Action == policy.ActionTempfail {
		attrs = append(attrs, slog.String("reply", v.Reply.String()))
	}
	if applyErr != nil {
		attrs = append(attrs, slog.String("error", applyErr.Error()))
	}
	log.LogAttrs(context.Background(), slog.LevelInfo, "message", attrs...)
}
