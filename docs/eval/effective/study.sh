#!/usr/bin/env bash
# The effective-length study (docs/eval/effective/study.md): resumable on any machine from what
# is committed. Run from anywhere in the checkout, after `make .venv/.salience-installed`:
#
#     nohup docs/eval/effective/study.sh > /tmp/effective-study.log 2>&1 &
#
# The database and the live records file stay outside the repository ($SALIENCE_STUDY_DIR,
# default /tmp/salience-study); on a machine that has neither, the committed records are
# imported first, so the same command goes on where the last machine stopped. Every
# $COMMIT_EVERY seconds, and after each phase, the records are copied into this folder with
# their report and committed (that file, the summary and the plots alone), so a reset loses at
# most that much work. Phases grow the lengths: the short ones first, so a partial study
# already reads at 0–2k.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
HERE=docs/eval/effective
WORK=${SALIENCE_STUDY_DIR:-/tmp/salience-study}
DB=$WORK/effective.sqlite3
LIVE=$WORK/records.jsonl.gz
COMMIT_EVERY=${COMMIT_EVERY:-1800}
S=.venv/bin/salience
mkdir -p "$WORK"

GRID=(--name effective --db "$DB" --bank "$HERE/bank-test.json" --items 60
      --kinds prose,similar,conflicting,noise --positions before,after --design rotated
      --methods none,xml,share,uniform,pasta --samples 4 --margin --max-new-tokens 48
      --dtype bfloat16 --seed 0)
PHASES=(0,512,1024,2048 0,512,1024,2048,4096 0,512,1024,2048,4096,8192)

if [ ! -f "$DB" ] && [ -f "$HERE/records.jsonl.gz" ]; then
  "$S" eval import "$HERE/records.jsonl.gz" --db "$DB" --name effective --design rotated
fi

commit() {  # the live records, their report and plots, committed alone
  [ -f "$LIVE" ] || return 0
  cp "$LIVE" "$WORK/snapshot.jsonl.gz"
  if cmp -s "$WORK/snapshot.jsonl.gz" "$HERE/records.jsonl.gz"; then return 0; fi
  cp "$WORK/snapshot.jsonl.gz" "$HERE/records.jsonl.gz"
  "$S" eval report --records "$HERE/records.jsonl.gz" --out "$HERE" > /dev/null
  local n
  n=$(zcat "$HERE/records.jsonl.gz" | wc -l)
  for _ in 1 2 3 4 5; do  # another commit may hold the index for a moment
    if git add -- "$HERE" && git commit -q -m "effective-length study: $n records" -- "$HERE"; then
      return 0
    fi
    sleep 5
  done
  echo "could not commit the study's records" >&2
}

( while sleep "$COMMIT_EVERY"; do commit || true; done ) &
COMMITTER=$!
trap 'kill $COMMITTER 2>/dev/null || true' EXIT

for lengths in "${PHASES[@]}"; do
  "$S" eval run "${GRID[@]}" --lengths "$lengths" --jsonl "$LIVE" --export-every 10 --quiet
  commit
done
echo "study complete: $(zcat "$LIVE" | wc -l) records"
