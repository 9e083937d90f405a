#!/usr/bin/env bash
# Puts WordNet 3.0 where NLTK looks for it (<dest>/corpora/wordnet), taken from Debian's wordnet-base and
# wordnet-sense-index packages (the NLTK downloader's host is not reachable offline). Idempotent.
set -euo pipefail
dest=${1:?usage: install_wordnet.sh NLTK_DATA_DIR}
target="$dest/corpora/wordnet"
[ -s "$target/index.sense" ] && [ -s "$target/data.noun" ] && [ -s "$target/lexnames" ] && exit 0
mkdir -p "$target"
if [ -s /usr/share/wordnet/data.noun ] && [ -s /usr/share/wordnet/index.sense ]; then
  src=/usr/share/wordnet
else
  command -v apt-get >/dev/null || { echo "install_wordnet: no apt-get; install WordNet 3.0 into $target by hand" >&2; exit 1; }
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  ( cd "$tmp" && { apt-get download wordnet-base wordnet-sense-index >/dev/null 2>&1 ||
      { [ "$(id -u)" = 0 ] && apt-get update -qq && apt-get download wordnet-base wordnet-sense-index >/dev/null 2>&1; }; } )
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
  src="$tmp/root/usr/share/wordnet"
fi
cp "$src"/* "$target/"
# NLTK also reads 'lexnames' (the 45 lexicographer files of WordNet 3.0), which Debian does not ship.
names="adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition
noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object noun.person
noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape noun.state
noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition verb.consumption
verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative
verb.weather adj.ppl"
i=0; : > "$target/lexnames"
for n in $names; do
  case $n in adj.*) pos=3;; adv.*) pos=4;; noun.*) pos=1;; verb.*) pos=2;; esac
  printf '%02d\t%s\t%d\n' "$i" "$n" "$pos" >> "$target/lexnames"; i=$((i+1))
done
echo "install_wordnet: WordNet installed in $target"
