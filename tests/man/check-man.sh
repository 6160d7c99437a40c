#!/usr/bin/env bash
# The manual pages: each docs/man/*.scd builds with scdoc, passes mandoc's lint and man's
# troff warnings, and says what the programs do: every option of each program's getopt
# tables and --help, every tidectl command, every tided.conf key of `tided --check-config`
# (under its section, with the default tided really has), and contrib/tided.conf holds every
# key at its default. It also converts each program's page to --help with tools/scd2help.
#
# Usage: check-man.sh SCD_DIR BIN_DIR [OUT_DIR]
#   SCD_DIR  the pages (docs/man); the sources are found two levels up from it
#   BIN_DIR  where tided, tidectl and tide-agent are (build/bin, or build with a bin/ in it)
#   OUT_DIR  where to keep the roff pages (default: a temporary directory, removed)
# Environment: CHECK_MAN_HELP_SYNC=1 also requires `PROG --help` (and `tidectl help CMD`) to
# be exactly what tools/scd2help makes of the page: set it once --help is generated from it.
# Exit: 0 all good; 1 something failed (each failure printed); 77 a tool is missing (skip).
set -euo pipefail

scd_dir=${1:?usage: check-man.sh SCD_DIR BIN_DIR [OUT_DIR]}
bin_dir=${2:?usage: check-man.sh SCD_DIR BIN_DIR [OUT_DIR]}
out_dir=${3:-}
[ -x "$bin_dir/bin/tided" ] && bin_dir=$bin_dir/bin
src_dir=$(cd "$scd_dir/../.." && pwd)

for tool in scdoc mandoc man python3; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
for prog in tided tidectl tide-agent; do
  [ -x "$bin_dir/$prog" ] || { echo "FAIL: no $bin_dir/$prog (build first)"; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$out_dir" ]; then out_dir=$work/roff; fi
mkdir -p "$out_dir"

failures=0
checks=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { checks=$((checks + 1)); }

# scdoc's own output puts a paragraph macro after every heading and before every heading and
# .RE that ends a paragraph (its syntax needs those blank lines); mandoc warns of each. Only
# these, nothing else, are ignored.
scdoc_noise='WARNING: skipping paragraph macro: PP (empty|after SH|after SS)$'

# ---- each page: scdoc, mandoc lint, man's warnings --------------------------------------------
pages=()
for scd in "$scd_dir"/*.scd; do
  [ -e "$scd" ] || { fail "no .scd page in $scd_dir"; break; }
  base=$(basename "$scd" .scd)   # tided.8
  pages+=("$base")
  roff=$out_dir/$base
  if ! scdoc <"$scd" >"$roff" 2>"$work/scdoc.err"; then
    fail "$base: scdoc: $(cat "$work/scdoc.err")"
    continue
  fi
  ok
  lint=$(mandoc -T lint -W warning "$roff" 2>&1 || true)
  ignored=$(grep -cE "$scdoc_noise" <<<"$lint" || true)
  rest=$(grep -vE "$scdoc_noise" <<<"$lint" | grep -v '^$' || true)
  if [ -n "$rest" ]; then
    fail "$base: mandoc -T lint -W warning:"$'\n'"$rest"
  else
    ok
  fi
  warn=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$roff" 2>&1 >/dev/null || echo "man exited $?")
  if [ -n "$warn" ]; then
    fail "$base: man --warnings:"$'\n'"$warn"
  else
    ok
  fi
  width=$(MANWIDTH=80 LC_ALL=C.UTF-8 man -l "$roff" 2>/dev/null |
    python3 -c 'import sys; print(max([len(l.rstrip("\n")) for l in sys.stdin.buffer.read().decode("utf-8").split("\n")] + [0]))')
  if [ "$width" -gt 80 ]; then fail "$base: rendered $width columns wide at MANWIDTH=80"; else ok; fi
  echo "$base: scdoc, mandoc lint ($ignored of scdoc's paragraph-macro warnings ignored), man --warnings, width $width: checked"
done

page_of() { echo "$scd_dir/$1.scd"; }
# The page's entry terms: a line starting with * or _ (after its tabs) whose next line is
# indented one tab deeper, the way OPTIONS and each command describe an option.
terms() {
  python3 - "$1" <<'PY'
import sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
for a, b in zip(lines, lines[1:]):
    d = len(a) - len(a.lstrip("\t"))
    if a[d:d + 1] in ("*", "_") and b.startswith("\t" * (d + 1)) and b.strip():
        print(a.strip())
PY
}
# True when one of the entry terms in file $1 holds OPT (--name or -x) as a word of its own.
documents() { grep -qE -- "(^|[^A-Za-z0-9-])$2([^A-Za-z0-9-]|\$)" "$1"; }

# ---- options: getopt tables and --help ---------------------------------------------------------
# Long and short options of the getopt tables in the given sources.
table_options() {
  python3 - "$@" <<'PY'
import re, sys
opts = set()
for path in sys.argv[1:]:
    text = open(path, encoding="utf-8").read()
    for m in re.finditer(r'\{\s*"([a-z][a-z0-9-]*)"\s*,\s*(?:no|required|optional)_argument', text):
        opts.add("--" + m.group(1))
    # getopt_long(argc, argv, OPTSTRING, ...): the literals of its third argument
    for m in re.finditer(r'getopt_long\(\s*\w+\s*,\s*\w+\s*,\s*([^,]+),', text):
        for lit in re.findall(r'"([^"]*)"', m.group(1)):
            for ch in lit:
                if ch.isalnum():
                    opts.add("-" + ch)
print("\n".join(sorted(opts)))
PY
}

check_options() { # PROG PAGE SOURCES...
  local prog=$1 page=$2; shift 2
  local n=0 missing=() helptext opt
  if [ ! -e "$page" ]; then fail "$prog: no page $page"; return; fi
  helptext=$("$bin_dir/$prog" --help)
  if [ "$prog" = tidectl ]; then
    local cmd
    for cmd in $(tidectl_commands); do helptext+=$'\n'$("$bin_dir/tidectl" help "$cmd"); done
  fi
  local from_help from_tables=""
  from_help=$(grep -oE -- '(^|[ ,[(|])--[a-z][a-z0-9-]*' <<<"$helptext" | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
  if [ "$#" -gt 0 ]; then from_tables=$(table_options "$@"); fi
  terms "$page" >"$work/terms"
  for opt in $(printf '%s\n%s\n' "$from_help" "$from_tables" | sort -u); do
    n=$((n + 1))
    documents "$work/terms" "$opt" || missing+=("$opt")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    fail "$prog: options not in $(basename "$page"): ${missing[*]}"
  else
    ok
  fi
  echo "$prog: $n options of its getopt tables and --help, each an entry of $(basename "$page")"
}

tidectl_commands() {
  "$bin_dir/tidectl" --help | awk '/^Commands/ { on = 1; next } on && /^$/ { exit } on && /^  [a-z]/ { print $1 }' | sort -u
}

tided_src=() agent_src=() ctl_src=()
if [ -f "$src_dir/daemon/tided.c" ]; then
  tided_src=("$src_dir/daemon/tided.c")
  agent_src=("$src_dir/guest-agent/tide-agent.c")
  ctl_src=("$src_dir"/cli/*.c "$src_dir/cli/commands.h")
else
  echo "note: sources not found at $src_dir: options checked against --help only"
fi
check_options tided "$(page_of tided.8)" "${tided_src[@]}"
check_options tide-agent "$(page_of tide-agent.8)" "${agent_src[@]}"
check_options tidectl "$(page_of tidectl.8)" "${ctl_src[@]}"

# Every tidectl command has its "## COMMAND" section.
missing=()
n=0
for cmd in $(tidectl_commands); do
  n=$((n + 1))
  grep -qx "## $cmd" "$(page_of tidectl.8)" || missing+=("$cmd")
done
if [ "$n" -eq 0 ]; then fail "tidectl --help lists no command"
elif [ "${#missing[@]}" -gt 0 ]; then fail "tidectl: commands without a '## COMMAND' section: ${missing[*]}"
else ok; fi
echo "tidectl: $n commands, each with its section"

# ---- tided.conf(5): every key, under its section, at its real default ------------------------
conf_page=$(page_of tided.conf.5)
: >"$work/empty.conf"
"$bin_dir/tided" --check-config "$work/empty.conf" >"$work/defaults" || fail "tided --check-config of an empty file failed"
# section key value, one a line, from check-config's output
awk '/^\[/ { s = substr($0, 2, length($0) - 2); next } / = / { k = $1; sub(/^[^=]*= /, ""); print s, k, $0 }' \
  "$work/defaults" >"$work/keys"
# section key default, from the page: "*key* = ..." entries below "# [section] SECTION"
python3 - "$conf_page" >"$work/documented" <<'PY'
import re, sys
section, key, text, out = None, None, [], []
def flush():
    if key:
        m = re.search(r"Default:\s+\*([^*]+)\*", " ".join(text))
        out.append("%s %s %s" % (section, key, m.group(1) if m else "-"))
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.rstrip("\n")
    h = re.match(r"# \[([a-z]+)\] SECTION$", line)
    if h or line.startswith("#"):
        flush(); key, text = None, []
        section = h.group(1) if h else None
        continue
    e = re.match(r"\*([a-z_]+)\* = ", line)
    if e and section:
        flush(); key, text = e.group(1), []
        continue
    if key and line and not line.startswith("\t"):
        flush(); key, text = None, []
    elif key:
        text.append(line.strip())
flush()
print("\n".join(out))
PY
n=0
while read -r sec key value; do
  n=$((n + 1))
  doc=$(awk -v s="$sec" -v k="$key" '$1 == s && $2 == k { print $3 }' "$work/documented")
  if [ -z "$doc" ]; then fail "tided.conf(5): [$sec] $key is not documented"; continue; fi
  if [ "$doc" = "-" ]; then fail "tided.conf(5): [$sec] $key has no 'Default: *VALUE*'"; continue; fi
  printf '[%s]\n%s = %s\n' "$sec" "$key" "$doc" >"$work/one.conf"
  got=$("$bin_dir/tided" --check-config "$work/one.conf" 2>&1) || { fail "tided.conf(5): [$sec] $key: documented default '$doc' is refused: $got"; continue; }
  if ! grep -qxF "$key = $value" <<<"$got"; then
    fail "tided.conf(5): [$sec] $key: documented default '$doc' is not tided's default '$value'"
    continue
  fi
  ok
done <"$work/keys"
while read -r sec key _; do
  grep -q "^$sec $key " "$work/keys" || fail "tided.conf(5) documents [$sec] $key, which tided does not know"
done <"$work/documented"
[ "$n" -gt 0 ] || fail "tided --check-config printed no key"
echo "tided.conf(5): $n keys of tided --check-config documented under their sections, each default checked by tided"
# Its examples (literal blocks that start with a section) are files tided takes.
python3 - "$conf_page" "$work/example" <<'PY'
import sys
blocks, cur = [], None
for line in open(sys.argv[1], encoding="utf-8").read().split("\n"):
    if line.strip() == "```":
        if cur is None:
            cur = []
        else:
            blocks.append(cur)
            cur = None
    elif cur is not None:
        cur.append(line.lstrip("\t").replace("\\\\", "\\"))
for k, b in enumerate(x for x in blocks if x and x[0].startswith("[")):
    open("%s.%d.conf" % (sys.argv[2], k), "w").write("\n".join(b) + "\n")
PY
n=0
for f in "$work"/example.*.conf; do
  [ -e "$f" ] || break
  n=$((n + 1))
  if got=$("$bin_dir/tided" --check-config "$f" 2>&1); then ok; else fail "tided.conf(5): an example is refused: $got"; fi
done
echo "tided.conf(5): $n example files accepted by tided --check-config"

# ---- contrib/tided.conf: every key, commented out at its default --------------------------------
example=$src_dir/contrib/tided.conf
if [ -f "$example" ]; then
  if got=$("$bin_dir/tided" --check-config "$example" 2>&1) && [ "$got" = "$(cat "$work/defaults")" ]; then ok
  else fail "contrib/tided.conf does not read as an empty file: $(diff <(echo "$got") "$work/defaults" || true)"; fi
  sed -E 's/^#([a-z_]+ = )/\1/' "$example" >"$work/uncommented.conf"
  if got=$("$bin_dir/tided" --check-config "$work/uncommented.conf" 2>&1) && [ "$got" = "$(cat "$work/defaults")" ]; then ok
  else fail "contrib/tided.conf uncommented is not the defaults: $(diff <(echo "$got") "$work/defaults" || true)"; fi
  missing=()
  while read -r sec key _; do
    awk -v s="[$sec]" -v k="#$key = " '$0 == s { on = 1; next } /^\[/ { on = 0 } on && index($0, k) == 1 { f = 1 } END { exit !f }' \
      "$example" || missing+=("[$sec] $key")
  done <"$work/keys"
  if [ "${#missing[@]}" -gt 0 ]; then fail "contrib/tided.conf lacks: ${missing[*]}"; else ok; fi
  echo "contrib/tided.conf: every key, commented out; as it is and uncommented it reads as the defaults"
else
  echo "note: $example not found: not checked"
fi

# ---- --help from the pages ----------------------------------------------------------------------
scd2help=$src_dir/tools/scd2help
if [ -x "$scd2help" ]; then
  for prog in tided tidectl tide-agent; do
    page=$(page_of "$prog.8")
    keys=("")
    if [ "$prog" = tidectl ]; then mapfile -t -O 1 keys < <(tidectl_commands); fi
    for k in "${keys[@]}"; do
      what="$prog${k:+ help $k}"
      args=("$page")
      [ -n "$k" ] && args+=("$k")
      if ! text=$("$scd2help" --text "${args[@]}" 2>&1); then fail "scd2help on $what: $text"; continue; fi
      wide=$(awk 'length > 80' <<<"$text")
      if [ -n "$wide" ]; then fail "$what: help lines over 80 columns:"$'\n'"$wide"; continue; fi
      "$scd2help" "$page" "$work/help.h" HELP_TEST >/dev/null || { fail "scd2help $page OUT.h failed"; continue; }
      ok
      if [ "${CHECK_MAN_HELP_SYNC:-0}" = 1 ]; then
        if [ -n "$k" ]; then real=$("$bin_dir/tidectl" help "$k"); else real=$("$bin_dir/$prog" --help); fi
        if [ "$real" != "${text%$'\n'}" ]; then
          fail "$what: --help is not the page's:"$'\n'"$(diff <(echo "$real") <(echo "$text") || true)"
        else ok; fi
      fi
    done
    echo "$prog: --help made from $(basename "$page") fits 80 columns$([ "${CHECK_MAN_HELP_SYNC:-0}" = 1 ] && echo " and is what $prog prints")"
  done
  # A page it cannot convert is an error that names the line, and writes nothing.
  n=0
  while IFS='|' read -r want page; do
    n=$((n + 1))
    printf '%b' "$page" >"$work/bad.scd"
    rm -f "$work/bad.h"
    if err=$("$scd2help" "$work/bad.scd" "$work/bad.h" BAD 2>&1); then
      fail "scd2help accepted a page with $want"
    elif ! grep -q "bad.scd:[0-9]*: " <<<"$err" || [ -e "$work/bad.h" ]; then
      fail "scd2help on a page with $want: no line named, or output written: $err"
    else ok; fi
  done <<'PAGES'
no SYNOPSIS|x(8)\n\n# OPTIONS\n\n*-a*\n\tA.\n
an option without its description|x(8)\n\n# SYNOPSIS\n\n*x*\n\n# OPTIONS\n\n*-a*\n\n\tA.\n
an unclosed mark|x(8)\n\n# SYNOPSIS\n\n*x*\n\n# OPTIONS\n\n*-a*\n\tA _b.\n
a list as the --help line|x(8)\n\n# SYNOPSIS\n\n*x*\n\n# OPTIONS\n\n*-a*\n\t- A.\n
a stray help directive|x(8)\n\n# SYNOPSIS\n\n*x*\n\n; help\n\nText.\n
a word wider than 79 columns|x(8)\n\n# SYNOPSIS\n\n*x*\n\n# OPTIONS\n\n*-a*\n\tA aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.\n
PAGES
  echo "scd2help: $n pages it cannot convert refused, each naming its line"
else
  echo "note: $scd2help not found: --help conversion not checked"
fi

if [ "$failures" -gt 0 ]; then
  echo "check-man: $failures failed, $checks passed"
  exit 1
fi
echo "check-man: OK, $checks checks on ${#pages[@]} pages"
