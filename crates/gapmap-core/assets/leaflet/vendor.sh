#!/usr/bin/env bash
# Re-vendors Leaflet from the npm registry and checks the tarball's hash.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack leaflet@1.9.4 >/dev/null
echo "84c65a256e50657896f54c33bd857b6849ebe94c817803be818bf32a3dde0b77  leaflet-1.9.4.tgz" | sha256sum -c -
tar xzf leaflet-1.9.4.tgz
grep -v sourceMappingURL package/dist/leaflet.js > "$here/leaflet.js"
cp package/dist/leaflet.css package/LICENSE "$here/"
