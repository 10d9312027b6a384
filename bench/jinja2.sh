#!/usr/bin/env bash
# Jinja2's two engines (docs/performance.md, "Jinja2 templates"): creating N instances in one
# command of a release whose one `:jinja2` part renders with minijinja, and of the same release
# whose template appends to a list (`{% do l.append(..) %}`), so that Python's Jinja2 renders it;
# REPS runs each, alternated.
#
#   bash bench/jinja2.sh            # N=1000 REPS=5
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}; REPS=${REPS:-5}
cargo build --release --quiet
S="$PWD/target/release/slapstore"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
for kind in minijinja jinja2; do
    body="{% set l = [port, greeting] %}name={{ name }} {{ l | join(' ') }}"
    [ "$kind" = jinja2 ] &&
        body="{% set l = [] %}{% do l.append(port) %}{% do l.append(greeting) %}name={{ name }} {{ l | join(' ') }}"
    cat >"$dir/$kind.cfg" <<EOS
[buildout]
parts = instance-profile

[instance-profile]
recipe = slapos.recipe.template
output = \${buildout:directory}/template.cfg
inline =
  [buildout]
  parts = config
  [slap-parameter]
  port = 8080
  greeting = Hello
  [config]
  recipe = slapos.recipe.template:jinja2
  output = \$\${buildout:directory}/etc/app.conf
  inline = $body
  context =
    key name slap-partition:name
    key port slap-parameter:port
    key greeting slap-parameter:greeting
EOS
done
names=$(seq -f "web-%g" 1 "$N" | tr '\n' ' ')
for r in $(seq 1 "$REPS"); do
    for kind in minijinja jinja2; do
        root="$dir/root-$kind"; rm -rf "$root"
        "$S" --root "$root" -q build "$dir/$kind.cfg" >/dev/null
        sync
        a=$(date +%s.%N)
        # shellcheck disable=SC2086
        "$S" --root "$root" instance create $names --software "$dir/$kind.cfg" >/dev/null
        echo "$kind: $N instances in $(echo "$(date +%s.%N) - $a" | bc) s"
    done
done
