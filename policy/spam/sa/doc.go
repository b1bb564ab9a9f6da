// Package sa runs SpamAssassin rule files natively.
//
// It reads the .cf files a site already has (the sa-update directory, else
// /usr/share/spamassassin, plus /etc/spamassassin/*.cf, see DefaultPaths):
// header (:raw, :addr, :name, exists:, ALL, ToCc, MESSAGEID, EnvelopeFrom,
// X-Spam-Relays-*; =~, !~, [if-unset: ...]), body, rawbody, uri, full,
// mimeheader and meta rules (boolean and arithmetic over hit counts),
// score (four score sets: 0 no Bayes and no network tests, 1 network, 2
// Bayes, 3 both; Options picks one), describe, tflags (multiple, maxhits,
// nice, net...), priority, if/ifplugin/else/endif, include,
// require_version, and the ReplaceTags plugin (replace_tag, <pre>, <post>,
// <inter>, replace_rules). A plugin counts as loaded when its evals are
// implemented here (see Plugins).
//
// Matching follows SpamAssassin: header tests see RFC 2047-decoded,
// unfolded values (RFC 5322 §2.2.3); body rules see the rendered text of
// the text parts (HTML reduced to text) as paragraphs with white space
// collapsed, the Subject first; rawbody the decoded parts in chunks; uri
// each link; full the raw message. Rule regexes match octets: the texts
// are UTF-8 and each byte is one rune to the regex engine (see latin1),
// so \xc3\xa9 in a rule is the octets of é, as in Perl.
//
// Perl regexes are translated to RE2 (Translate): flags, \z \Z \A, $
// before a final newline, possessive quantifiers and atomic groups (as
// plain ones), \x{...}, \h \v \R \N, octal, POSIX classes, Perl's class
// quirks, literal braces. Those RE2 cannot run (backreferences,
// lookaround) run on a backtracking engine (regexp2) with a per-match
// timeout, screened by an RE2 superset of the regex (lookarounds dropped,
// backreferences as .*). On the Debian rule set that is 188 of 1215
// regexes, many of them scored, so skipping them would lose more than
// bounding them costs. The costliest of them on real mail (the From/To/
// Subject comparisons, __RAND_HEADER) also have a hand-written screen,
// keyed by their exact pattern text, that proves no match cheaply
// (btscreen.go); tests hold each screen to the backtracking engine.
//
// Speed: each regex yields required literals (a set, one of which every
// match contains) and an ASCII variant (the branches that can only match
// bytes above 0x7f removed), exact on ASCII text, much smaller for the
// obfuscation-class rules, and often with literals where the full regex
// has none. One Aho-Corasick pass per kind over each line finds the
// candidate rules of that line; only those run, first on a lazily built
// DFA (Go's regexp has none: its NFA pays for every live thread on every
// byte), then, where the DFA says "match" and the count or a
// backreference matters, on the regexp or the backtracking engine. The
// count of a `multiple` rule comes from the DFA when the regex can match
// once at most (anchored at the start), and from a byte walk when it is
// an alternation of fixed rune sequences (__LOWER_E), from an anchored
// automaton at each line start when every match starts a line
// (__FILL_THIS_FORM_PARTIAL_RAW); else from FindAll. The
// texts are decoded and rendered once per message. The rules without
// literals are screened in groups of 32 by one multi-regex automaton per
// text (as RE2::Set; the rules with large counts, whose states multiply,
// in groups of 4), which names the rules that match; where a rule's
// automaton is its regex, that answer is the hit. Header rules are
// grouped by the text they read (field, modifier, if-unset), which is got
// and screened once. A regex whose matches all begin with one of a few
// literals starts its automaton at the first of them. The automata keep
// one flat transition table over byte classes per regex, read without a
// lock; a full cache is flushed and rebuilt when it has paid for itself,
// as RE2 does, and all of them share one memory budget
// (Options.CacheBytes): past it the tables keep their oldest states (the
// most used), three quarters of the budget, and rebuild the rest as mail
// needs it; the tables, programs and fallback regexps unused for a
// budget's worth of new states are dropped. So a long-running daemon's
// heap does not grow with the mail it sees. Memory (a warm engine on the Debian rules holds about half
// what it did): the automata step through a compact program (8-byte
// instructions, rune instructions as byte sets), their states keep their
// threads once (in the index key), a single regex's transitions are 16
// bits and a group's carry their match set's number in the entry; the
// rules' parsed trees are dropped after Compile and parsed again on an
// automaton's first use; the Aho-Corasick automata keep dense rows only
// near the root. X{n} rules are screened by X's automaton first, and X{n}
// that RE2's parser refuses for its size runs on the automaton exactly.
// Regexps are compiled on first use and the rule regexes in parallel, so
// that start-up stays short. Body and rawbody rules see
// the first 50000 / 500000 bytes of each part (SpamAssassin's
// body_part_scan_size and rawbody_part_scan_size defaults).
//
// Eval functions: those that carry the most score weight on the Debian
// rules are implemented natively (see evals); the rest are skipped and
// counted in Stats.MissingEvals, and a meta that reads a skipped rule
// where its absence could make the meta fire (under !, on the right of >)
// is skipped too, so that no rule fires here that could not fire in
// SpamAssassin. Names no loaded file defines read 0, as in SpamAssassin.
//
// The SPF, DKIM and DMARC plugins' evals (RFC 7208, RFC 6376, RFC 7489;
// SPF_PASS, DKIM_VALID_AU, DMARC_REJECT, ...) read Message.Auth, the
// caller's own results, instead of asking DNS again; with Options.Auth
// they score from the network score set (SpamAssassin scores them 0
// without network tests). Without Message.Auth they never fire.
//
// Each hit is a Hit with SpamAssassin's score, reported as the signal
// "sa-RULE"; Options.Overrides re-weights rules. Engine.Describe lists what
// was loaded, translated and skipped.
package sa
