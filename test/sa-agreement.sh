#!/usr/bin/env bash
# Compares, message by message, which rules mailwarden's SpamAssassin rule
# engine (policy/spam/sa) fires with which rules SpamAssassin 4 itself
# fires on the same messages, and prints a per-rule table sorted by
# disagreements.
#
#   1. a sample of N ham and N spam of the corpus, chosen by the SHA-256 of
#      the file name (as TestCorpusHitsGolden chooses its sample);
#   2. SpamAssassin: a private spamd -L (local tests only: no DNS lists,
#      Razor, Pyzor), Bayes off; `spamc -y` gives the rule names, one spamc
#      per message, 2 at a time;
#   3. mailwarden: `mailwarden rules -test DIR` in one process, with the
#      same setup: Bayes off, no DNS lists (score set 0), the same rule
#      files (both take the newest sa-update directory, else
#      /usr/share/spamassassin).
#
# Both see the same bytes: there is no envelope (SpamAssassin and the
# engine both take the envelope sender from Return-Path), no
# trusted_networks (both infer the trusted relays from private addresses),
# and no SPF/DKIM (they need DNS; the engine has no Auth without the
# daemon's checks).
#
# usage: test/sa-agreement.sh [--sample 150] [--ham DIR] [--spam DIR]
#          [--keep DIR] [--rule NAME]
#   --keep DIR   keep the hit lists (sa.tsv, mw.tsv) in DIR;
#   --rule NAME  also list the messages on which the two disagree on NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"

corpus=${CORPUS:-../shared/corpus/spamassassin}
ham=$corpus/ham spam=$corpus/spam n=150 keep= rule=
while [ $# -gt 0 ]; do
	case $1 in
	--sample) n=$2; shift 2 ;;
	--ham) ham=$2; shift 2 ;;
	--spam) spam=$2; shift 2 ;;
	--keep) keep=$2; shift 2 ;;
	--rule) rule=$2; shift 2 ;;
	*) echo "usage: $0 [--sample N] [--ham DIR] [--spam DIR] [--keep DIR] [--rule NAME]" >&2; exit 2 ;;
	esac
done
. test/sa-common.sh
sa_init spamd spamc python3

# 1. The sample, linked into one directory per class (class/NAME).
mkdir -p "$work/msgs/ham" "$work/msgs/spam"
for class in ham spam; do
	dir=$ham
	[ $class = spam ] && dir=$spam
	dir=$(realpath "$dir")
	for f in "$dir"/*; do
		printf '%s\t%s\n' "$(printf '%s' "$(basename "$f")" | sha256sum | cut -c1-16)" "$f"
	done | sort | sed -n "1,${n}p" | cut -f2 | while read -r f; do
		ln -s "$f" "$work/msgs/$class/$(basename "$f")"
	done
done
chmod -R a+rX "$work/msgs"

# 2. SpamAssassin.
sa=$work/sa
mkdir -p "$sa/site" "$sa/home"
cp /etc/spamassassin/*.pre /etc/spamassassin/*.cf "$sa/site/" # local.cf is replaced below
printf '%s\n' "use_bayes 0" "bayes_auto_learn 0" "skip_rbl_checks 1" "use_razor2 0" "use_pyzor 0" \
	"required_score 5.0" >"$sa/site/local.cf"
chmod -R a+rwX "$sa"
sa_spamd "$sa" 2
t0=$(date +%s)
# Output: class/NAME<TAB>RULE,RULE,... (-s: no size limit, as the engine).
(cd "$work/msgs" && ls -d ham/* spam/* | xargs -P 2 -L 1 sh -c \
	's=$(spamc -d 127.0.0.1 -p '"$port"' -s 100000000 -y <"$0" 2>/dev/null || true); printf "%s\t%s\n" "$0" "$s"') >"$work/sa.tsv"
echo "SpamAssassin: $(wc -l <"$work/sa.tsv") messages in $(($(date +%s) - t0)) s" >&2
sa_stop

# 3. mailwarden, set up as SpamAssassin is above.
printf '%s\n' "[spam.bayes]" "enabled = false" "[spam.rules]" "enabled = true" 'budget = "10m"' >"$work/mw.toml"
for class in ham spam; do
	"$work/mailwarden" rules -config "$work/mw.toml" -test "$work/msgs/$class" |
		sed "s|^$work/msgs/||"
done >"$work/mw.tsv"

if [ -n "$keep" ]; then
	mkdir -p "$keep"
	cp "$work/sa.tsv" "$work/mw.tsv" "$keep/"
fi

# 4. The table.
python3 - "$work/sa.tsv" "$work/mw.tsv" "$rule" <<'PY'
import sys
def read(p):
    d = {}
    for l in open(p):
        k, _, v = l.rstrip("\n").partition("\t")
        d[k] = set(x for x in v.split(",") if x)
    return d
sa, mw, rule = read(sys.argv[1]), read(sys.argv[2]), sys.argv[3]
msgs = sorted(set(sa) & set(mw))
missing = sorted(set(sa) ^ set(mw))
rules = set()
for m in msgs:
    rules |= sa[m] | mw[m]
rows = []
for r in rules:
    s = sum(r in sa[m] for m in msgs)
    o = sum(r in mw[m] for m in msgs)
    b = sum(r in sa[m] and r in mw[m] for m in msgs)
    rows.append((r, s, o, b, s - b, o - b))
rows.sort(key=lambda x: (-(x[4] + x[5]), x[0]))
pairs = sum(len(sa[m] | mw[m]) for m in msgs)
both = sum(len(sa[m] & mw[m]) for m in msgs)
same = sum(sa[m] == mw[m] for m in msgs)
agree = sum(x[4] + x[5] == 0 for x in rows)
print(f"{len(msgs)} messages; rule hits (message, rule): {both} of {pairs} agree ({100*both/max(pairs,1):.1f}%)")
print(f"messages with the same rule set: {same} of {len(msgs)} ({100*same/max(len(msgs),1):.1f}%)")
print(f"rules hit: {len(rows)}, of which {agree} agree on every message\n")
print(f"{'rule':32}{'SA':>6}{'ours':>6}{'both':>6}{'SA-only':>9}{'ours-only':>11}")
for r in rows:
    if r[4] + r[5] == 0:
        break
    print(f"{r[0]:32}{r[1]:>6}{r[2]:>6}{r[3]:>6}{r[4]:>9}{r[5]:>11}")
if missing:
    print(f"\nwarning: {len(missing)} messages have a result on one side only: {missing[:5]}")
if rule:
    print(f"\n{rule}: SA-only", [m for m in msgs if rule in sa[m] and rule not in mw[m]])
    print(f"{rule}: ours-only", [m for m in msgs if rule in mw[m] and rule not in sa[m]])
PY
