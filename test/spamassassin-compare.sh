#!/usr/bin/env bash
# Compares mailwarden's spam scoring with SpamAssassin 4 (Debian package
# spamassassin) on the same cross-validation folds of a corpus:
#
#   1. `mailwarden eval --print-folds` splits the corpus (stratified,
#      deterministic) and marks the test sample of the chosen fold;
#   2. mailwarden: `mailwarden eval` trains its Bayes on the other folds
#      and scores the test sample (DNS lists off);
#   3. SpamAssassin: sa-learn on exactly the same training messages into a
#      private Bayes database, then spamd -L (local tests only: no DNS
#      lists, no Razor/Pyzor) with that database scores the same test
#      messages through spamc, with as many children as mailwarden has
#      workers;
#   4. both tables are printed side by side. SpamAssassin is judged at its
#      own threshold (required_score 5.0), mailwarden at score.quarantine.
#
# SpamAssassin scores ~10 messages/s, so by default only a stratified sample
# of one fold is scored (--max-test); --max-test 0 scores the whole fold.
#
# usage: test/spamassassin-compare.sh [--ham DIR] [--spam DIR] [--folds 5]
#          [--test-fold 0|all] [--max-test 400] [--workers 2]
#          [--split-date YYYY-MM-DD | --train DIR... --test DIR...]
#          [--sample N] [--no-bayes] [--bayes-dir DIR] [--config FILE]
# --test-fold all repeats training and testing for every fold (SpamAssassin
# takes 3-5 minutes per fold of the 6046-message corpus).
#
# Other modes (the split comes from `mailwarden eval --print-folds` in each,
# so both filters see exactly the same messages):
#   --split-date D   train on the messages received before D (topmost
#                    Received, else Date), test on those received later;
#   --train DIR --test DIR   train on DIR/ham + DIR/spam, test on the other;
#   --sample N       score N ham and N spam of the test set (with a split);
#   --no-bayes       what a fresh install does: mailwarden eval --no-bayes,
#                    SpamAssassin with use_bayes 0 (nothing is learned).
#   --config FILE    mailwarden's config (default: the built-in defaults,
#                    whatever /etc/mailwarden holds);
#   --bayes-dir DIR  keep SpamAssassin's Bayes database in DIR/fold-N
#                    instead of a temporary directory: sa-learn runs in
#                    batches of 100 messages and records each finished
#                    batch (DIR/fold-N/learned), so an interrupted run
#                    resumes where it stopped, and a finished database is
#                    reused as long as the training set is the same
#                    (sa-learn takes ~30 min for the 3,545 messages before
#                    2002-09-01 on 2 shared cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"

corpus=${CORPUS:-../shared/corpus/spamassassin}
ham=$corpus/ham spam=$corpus/spam folds=5 fold=0 maxtest=400 workers=2
split=() nobayes=0 sample=0 hamset=0 bayesdir= mwconfig=
while [ $# -gt 0 ]; do
	case $1 in
	--split-date) split+=(--split-date "$2"); shift 2 ;;
	--train) split+=(--train "$2"); shift 2 ;;
	--test) split+=(--test "$2"); shift 2 ;;
	--sample) sample=$2; shift 2 ;;
	--no-bayes) nobayes=1; shift ;;
	--bayes-dir) bayesdir=$2; shift 2 ;;
	--config) mwconfig=$(realpath "$2"); shift 2 ;;
	--ham) ham=$2; shift 2 ;;
	--spam) spam=$2; shift 2 ;;
	--folds) folds=$2; shift 2 ;;
	--test-fold) fold=$2; shift 2 ;;
	--max-test) maxtest=$2; shift 2 ;;
	--workers) workers=$2; shift 2 ;;
	*) echo "usage: $0 [--ham DIR] [--spam DIR] [--folds N] [--test-fold I] [--max-test N] [--workers N] [--split-date D | --train DIR --test DIR] [--sample N] [--no-bayes] [--bayes-dir DIR] [--config FILE]" >&2; exit 2 ;;
	esac
done
. test/sa-common.sh
sa_init sa-learn spamd spamc python3
mw=$work/mailwarden
if [ -z "$mwconfig" ]; then
	mwconfig=$work/default.toml # empty: the built-in defaults
	: >"$mwconfig"
fi
common=(-config "$mwconfig" --ham "$ham" --spam "$spam" --folds "$folds" --max-test "$maxtest" --workers "$workers")
if [ ${#split[@]} -gt 0 ]; then
	# A train/test split: fold 0 is the test set, fold 1 the training set.
	case " ${split[*]} " in
	*" --split-date "*) common=(-config "$mwconfig" --ham "$ham" --spam "$spam" "${split[@]}" --max-test "$maxtest" --workers "$workers") ;;
	*) common=(-config "$mwconfig" "${split[@]}" --max-test "$maxtest" --workers "$workers") ;;
	esac
	[ "$sample" -gt 0 ] && common+=(--sample "$sample")
	fold=0
fi
[ "$nobayes" = 1 ] && common+=(--no-bayes)
if [ "$fold" = all ]; then
	testfolds=$(seq 0 $((folds - 1)))
	mwargs=("${common[@]}")
else
	testfolds=$fold
	mwargs=("${common[@]}" --test-fold "$fold")
fi

# 1. The split (the same for both).
"$mw" eval "${mwargs[@]}" --print-folds >"$work/folds.tsv"

# 2. mailwarden.
"$mw" eval "${mwargs[@]}" --json >"$work/mw.json"

# 3. SpamAssassin with its own Bayes database per fold.
: >"$work/sa.tsv"
sasecs=0
for f in $testfolds; do
	sa=$work/sa-$f
	awk -F'\t' -v f="$f" '$1!=f && $2=="spam" {print $4}' "$work/folds.tsv" >"$sa.train-spam"
	awk -F'\t' -v f="$f" '$1!=f && $2=="ham" {print $4}' "$work/folds.tsv" >"$sa.train-ham"
	awk -F'\t' -v f="$f" '$1==f && $3==1 {print $2"\t"$4}' "$work/folds.tsv" >"$sa.test"
	echo "fold $f: training on $(wc -l <"$sa.train-ham") ham + $(wc -l <"$sa.train-spam") spam, testing $(wc -l <"$sa.test") messages" >&2
	bdir=$sa/bayes
	if [ -n "$bayesdir" ]; then
		bdir=$(realpath -m "$bayesdir")/fold-$f
		# A different training set invalidates the database.
		key=$(cat "$sa.train-spam" "$sa.train-ham" | sha256sum | cut -c1-16)
		if [ "$(cat "$bdir/trainset" 2>/dev/null)" != "$key" ]; then
			rm -rf "$bdir"
			mkdir -p "$bdir"
			echo "$key" >"$bdir/trainset"
		fi
	fi
	mkdir -p "$sa/site" "$sa/home" "$bdir"
	touch "$bdir/learned"
	cp /etc/spamassassin/*.pre "$sa/site/"
	usebayes=$((1 - nobayes))
	printf '%s\n' "use_bayes $usebayes" "bayes_auto_learn 0" "bayes_path $bdir/bayes" "bayes_file_mode 0777" \
		"skip_rbl_checks 1" "use_razor2 0" "use_pyzor 0" "required_score 5.0" >"$sa/site/local.cf"
	chmod -R a+rwX "$sa" "$bdir"
	chmod a+x "$(dirname "$bdir")"
	sal=(sa-learn --siteconfigpath "$sa/site" --dbpath "$bdir" -L --no-sync)
	if [ "$nobayes" = 0 ] && ! grep -qx synced "$bdir/learned"; then
		t0=$(date +%s.%N)
		for class in spam ham; do
			split -l 100 -d -a 4 "$sa.train-$class" "$sa.batch-$class-"
			for b in "$sa.batch-$class-"*; do
				id="$class $(basename "$b") $(sha256sum <"$b" | cut -c1-16)"
				grep -qxF "$id" "$bdir/learned" && continue
				xargs -d '\n' "${sal[@]}" --"$class" <"$b" >/dev/null
				echo "$id" >>"$bdir/learned"
				echo "fold $f: learned $(grep -c . "$bdir/learned") batches of 100 ($(date -u +%T))" >&2
			done
		done
		sa-learn --siteconfigpath "$sa/site" --dbpath "$bdir" --sync >/dev/null
		echo synced >>"$bdir/learned"
		t1=$(date +%s.%N)
		echo "fold $f: sa-learn $(python3 -c "print(round($t1-$t0))") s" >&2
	fi

	sa_spamd "$sa" "$workers"
	t0=$(date +%s.%N)
	# One spamc per message, $workers at a time; output: CLASS<TAB>SCORE.
	awk -F'\t' '{print $1" "$2}' "$sa.test" | xargs -P "$workers" -L 1 sh -c \
		's=$(spamc -d 127.0.0.1 -p '"$port"' -c -x <"$1" 2>/dev/null || true); printf "%s\t%s\n" "$0" "${s%%/*}"' >>"$work/sa.tsv"
	t1=$(date +%s.%N)
	sasecs=$(python3 -c "print($sasecs+$t1-$t0)")
	sa_stop
done

# 4. Both tables.
if [ ${#split[@]} -gt 0 ]; then
	mode="train/test split: ${split[*]}"
else
	mode="fold $fold of $folds"
fi
[ "$nobayes" = 1 ] && mode="$mode, no Bayes"
python3 - "$work/mw.json" "$work/sa.tsv" "$sasecs" "$workers" "$mode" <<'EOF'
import json, sys
mw = json.load(open(sys.argv[1]))
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[2]) if l.strip()]
secs, workers = float(sys.argv[3]), int(sys.argv[4])
bad = [r for r in rows if len(r) < 2 or r[1] == ""]
sc = [(r[0], float(r[1]) if len(r) > 1 and r[1] else 0.0) for r in rows]
ham = [s for c, s in sc if c == "ham"]
spam = [s for c, s in sc if c == "spam"]
thr = 5.0
fp = sum(1 for s in ham if s >= thr)
fn = sum(1 for s in spam if s < thr)
def auc(h, s):
    h = sorted(h); u = 0.0
    import bisect
    for x in s:
        lo = bisect.bisect_left(h, x); hi = bisect.bisect_right(h, x)
        u += lo + (hi - lo) / 2
    return u / len(h) / len(s) if h and s else 0
sa = dict(ham=len(ham), spam=len(spam), fp=fp, fp_rate=fp / max(len(ham), 1), fn=fn,
          recall=(len(spam) - fn) / max(len(spam), 1), auc=auc(ham, spam), msgs_per_sec=len(sc) / secs)
folds = ",".join(r["fold"] for r in mw["per_fold"])
mode = sys.argv[5]
print(f"same test messages: {mw['ham']} ham + {mw['spam']} spam ({mode}), {workers} workers each\n")
print(f"{'':22}{'mailwarden':>14}{'SpamAssassin 4':>18}")
print(f"{'threshold':22}{mw['threshold']:>14.1f}{thr:>18.1f}")
print(f"{'false positives':22}{mw['false_positives']:>14d}{fp:>18d}")
print(f"{'FP rate':22}{100*mw['fp_rate']:>13.2f}%{100*sa['fp_rate']:>17.2f}%")
print(f"{'missed spam':22}{mw['false_negatives']:>14d}{fn:>18d}")
print(f"{'spam recall':22}{100*mw['recall']:>13.2f}%{100*sa['recall']:>17.2f}%")
print(f"{'ROC AUC':22}{mw['auc']:>14.4f}{sa['auc']:>18.4f}")
print(f"{'msgs/s':22}{mw['msgs_per_sec']:>14.0f}{sa['msgs_per_sec']:>18.1f}")
print(f"{'speed ratio':22}{mw['msgs_per_sec']/max(sa['msgs_per_sec'],1e-9):>13.0f}x")
if bad:
    print(f"\nwarning: spamc gave no score for {len(bad)} messages (counted as 0)")
EOF
