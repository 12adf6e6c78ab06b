#!/usr/bin/env bash
# check-citations.sh - every citation in a source tree can be opened by a reader of the
# tree (rules: docs/protocol.md, first paragraphs).  Usage: tests/check-citations.sh [ROOT]
# (default: the tree this script is in).  Prints one "path:line: what" per problem and
# exits 1 if there is any, 0 if none, 2 if ROOT has no docs/protocol.md.  Checks:
#   1. a section sign with a number names a numbered heading of docs/protocol.md, and a
#      "(name)" right after it is that heading's {#name};
#   2. the protocol notes are cited by their path in the tree, docs/protocol.md;
#   3. docs/<file>.md that is named exists;
#   4. nothing points outside the tree (the work area, the team's shared folder);
#   5. no Linux blkback/blkfront shorthand with line numbers (bb/..., bf:...);
#   6. a public owner/repo:path citation of the projects cited here carries @<tag or commit>;
#   7. no bare file:line citation in src, include, tools, conf, man, docs.
# Used by tests/t_citations.c (make check).
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
doc=$root/docs/protocol.md
[ -f "$doc" ] || { echo "$root: no docs/protocol.md"; exit 2; }
cd "$root" || exit 2

# Text files of the tree, build output and git metadata left out.
mapfile -t files < <(find . \( -name .git -o -name 'build' -o -name 'build-*' \) -prune -o \
                          -type f -print | sed 's#^\./##' | sort)
text=()
for f in "${files[@]}"; do grep -Iq . "$f" 2>/dev/null && text+=("$f"); done
[ ${#text[@]} -gt 0 ] || { echo "$root: no text files"; exit 2; }

bad=0
say() { echo "$1"; bad=1; }

# Section numbers and names of docs/protocol.md: "## 4. Title {#name}", "### 4.1 Title {#name}".
declare -A sec
while IFS=$'\t' read -r num name; do sec[$num]=$name; done < <(
  grep -P '^#{2,4} [0-9]+(\.[0-9]+)*\.? ' "$doc" |
  sed -E 's/^#+ ([0-9]+(\.[0-9]+)*)\.? .*\{#([a-z0-9-]+)\}[[:space:]]*$/\1\t\3/; t; s/^#+ ([0-9]+(\.[0-9]+)*)\.? .*/\1\t/')
[ ${#sec[@]} -gt 0 ] || { echo "docs/protocol.md: no numbered sections"; exit 1; }

# 1. Section references (the doc's own included).
while IFS= read -r hit; do
  loc=${hit%%:§*}; ref=${hit#"$loc":§}
  num=$(printf '%s' "$ref" | grep -oP '^[0-9]+(\.[0-9]+)*')
  name=$(printf '%s' "$ref" | grep -oP '^[0-9.]+ \(\K[a-z][a-z0-9-]*(?=\))')
  if [ -z "${sec[$num]+x}" ]; then
    say "$loc: §$num: no such section in docs/protocol.md"
  elif [ -n "$name" ] && [ "$name" != "${sec[$num]}" ]; then
    say "$loc: §$num ($name): that section is named '${sec[$num]}'"
  fi
done < <(grep -HnoP '§[0-9]+(\.[0-9]+)*( \([a-z][a-z0-9-]*\))?' "${text[@]}")

# 2. The notes' file name without docs/ in front (the NBD project's proto.md is another file).
while IFS= read -r hit; do say "$hit: cite docs/protocol.md"; done < <(
  grep -HnoP '(?<![\w/.-])(?<!docs/)protocol\.md' "${text[@]}")

# 3. docs/<file>.md must exist.
while IFS= read -r hit; do
  loc=${hit%:*}; f=${hit##*:}
  [ -f "$f" ] || say "$loc: $f: not in the tree"
done < <(grep -HnoP '(?<![\w/.-])docs/[\w.-]+\.md' "${text[@]}")

# 4. Paths outside the tree.
while IFS= read -r hit; do say "$hit: points outside the tree"; done < <(
  grep -HnoP '(?<![\w.-])/w[o]rk/[\w./-]*|\.\./sh[a]red\b[\w./-]*|(?<![\w.-])sh[a]red/docs\b[\w./-]*' "${text[@]}")

# 5. Linux shorthand with line numbers.
while IFS= read -r hit; do say "$hit: Linux shorthand: cite torvalds/linux:<path>@<tag> and a function"; done < <(
  grep -HnoP '(?<![\w/.-])b[bf](/[\w.-]+\.[ch])?:[0-9]+|(?<![\w/.-])bb/[\w-]+\.[ch]\b' "${text[@]}")

# 6. Public citations without a ref.
repos='torvalds/linux|xen-project/xen|qemu/qemu|ceph/ceph|xapi-project/blktap|NetworkBlockDevice/nbd|libguestfs/[\w-]+'
while IFS= read -r hit; do say "$hit: public citation without @<tag or commit>"; done < <(
  grep -HnoP "(?<![\\w/.-])($repos):[\\w./<>-]*[\\w/>](?![\\w./<>@-])" "${text[@]}")

# 7. Bare file:line citations in code and documentation (test logs may quote kernel warnings).
while IFS= read -r hit; do say "$hit: file:line citation: name a section or a function"; done < <(
  for f in "${text[@]}"; do
    case $f in src/*|include/*|tools/*|conf/*|man/*|docs/*) echo "$f";; esac
  done | xargs -r grep -HnoP '(?<![\w/.-])[\w/-]+\.(c|h|sh|ml|txt|pandoc|in):[0-9]+')

[ $bad -eq 0 ] && echo "citations: ${#text[@]} files, ${#sec[@]} sections of docs/protocol.md: all resolve"
exit $bad
