// Package policy is mailwarden's decision engine: the Check interface and
// its optional interfaces (After, RcptChecker, Observer), Result, Action,
// Verdict, the Pipeline that runs checks (pipeline.go; one guarded runner,
// guard.go; the merge in named steps, merge.go; header rendering,
// headers.go), the lists and [[rule]]s, the modes, and the TOML config.
// The message model is policy/message; daemon settings, exit codes and the
// metrics library live with the binary (cmd/mailwarden/internal).
//
// Mechanism. Checks report facts in their RFC's vocabulary (Status), a
// score and entries for Authentication-Results; the operator's config
// decides what they cost. The Pipeline runs independent checks
// concurrently, each with its own deadline, panic recovery and on_error
// action, and checks that declare After dependencies in later levels. It
// merges the results by severity (accept < quarantine < tempfail <
// discard < reject), maps the total score to the [score] thresholds, and
// returns one Verdict with stable reason codes, the header changes
// (Authentication-Results on top, RFC 8601 §5: forged copies claiming our
// authserv-id removed) and the SMTP reply. Allow lists and protected
// recipients (RFC 5321 §4.5.1 postmaster, RFC 2142 abuse) soften every
// action except mandatory ones (malware). Modes (enforce, monitor,
// tempfail-all, accept-all) let an operator switch the filter at short
// notice; a Holder swaps a reloaded pipeline in atomically.
//
// Configuration is one TOML file: the core keys here, plus one section per
// Module (a check or a shared service) decoded in the same pass, so that an
// unknown key anywhere is an error with its line.
//
// Sub-packages hold the checks (auth, virus, spam, autoreply, ratelimit,
// relay, spool) and the service types (dns, store); they import this
// package, never the other way round. Services are built once by the
// daemon (cmd/mailwarden/internal/wire) and given to each module's
// constructor as typed values; checks read each other's results through
// typed accessors of the owning package (auth.SPFOutcomeOf, virus.Infected).
package policy
