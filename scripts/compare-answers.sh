#!/usr/bin/env bash
# compare-answers.sh OLD_BINARY NEW_BINARY: starts both as `icthp serve`
# (demo models, loopback ports 18081/18082) and compares their answers to the
# same requests (JSON, tensor and multipart bodies, every route) byte for
# byte. Run from the repository root (it reads testdata/demo). Any further
# arguments go to both serves (model directories: --ict DIR --hp DIR
# --imagereward DIR --pickscore DIR ...; none: the demo models).
set -u
OLD=$1 NEW=$2
shift 2
TMP=$(mktemp -d)
"$OLD" serve --addr 127.0.0.1:18081 "$@" 2>$TMP/old.log & P1=$!
"$NEW" serve --addr 127.0.0.1:18082 "$@" 2>$TMP/new.log & P2=$!
trap 'kill $P1 $P2; rm -rf "$TMP"' EXIT
for p in 18081 18082; do for i in $(seq 100); do curl -sf 127.0.0.1:$p/readyz >/dev/null && break; sleep 0.3; done; done
IMG=$(base64 -w0 testdata/demo/$(ls testdata/demo | grep -i png | head -1))
IMG2=$(base64 -w0 testdata/demo/$(ls testdata/demo | grep -i jpg | head -1))
PIX=$(head -c 192 /dev/urandom | base64 -w0)
reqs=(
"/v1/score|{\"prompt\":\"a cat\",\"images\":[\"$IMG\",\"$IMG2\",\"notbase64!\"]}"
"/v1/score|{\"images\":[\"$IMG\"]}"
"/v1/rank|{\"prompt\":\"a cat\",\"images\":[\"$IMG\",\"$IMG2\",\"AAAA\"]}"
"/v1/reward|{\"items\":[{\"prompt\":\"a\",\"image\":\"$IMG\"},{\"prompt\":\"b\",\"image\":\"AAAA\"}],\"weights\":{\"ict\":1,\"hp\":2}}"
"/v1/reward|{\"items\":[]}"
"/v1/embed|{\"texts\":[\"a cat\"],\"images\":[\"$IMG\",{\"data\":\"$PIX\",\"shape\":[8,8,3],\"dtype\":\"uint8\"}]}"
"/v1/score|{\"prompt\":\"x\",\"images\":[]}"
"/v1/score|{\"images\":[\"$IMG\"],\"models\":[\"nope\"]}"
"/v1/score|{\"prompt\":\"a cat\",\"images\":[\"$IMG\",\"$IMG2\"],\"models\":[\"hp\",\"imagereward\",\"aesthetic\"]}"
"/v1/reward|{\"items\":[{\"prompt\":\"a\",\"image\":\"$IMG\"},{\"prompt\":\"b\",\"image\":\"$IMG2\"}],\"reward\":\"product\"}"
"/v1/reward|{\"items\":[{\"prompt\":\"a\",\"image\":\"$IMG\"}],\"weights\":{\"hp_logit\":1e308}}"
"/v1/reward|{\"items\":[{\"prompt\":\"a\",\"image\":\"$IMG\"}],\"weights\":{\"imagereward\":1e308}}"
"/v1/reward|{\"items\":[{\"prompt\":\"a\",\"image\":\"$IMG\"}],\"weights\":{\"aesthetic\":1e308}}"
"/v1/reward|{\"items\":[{\"prompt\":\"a\",\"image\":\"$IMG\"}],\"weights\":{\"pickscore\":1e308}}"
"/v1/reward|{\"items\":[{\"prompt\":\"a\",\"image\":\"$IMG\"}],\"weights\":{\"pickscore_prob\":1.7e308,\"hp\":1.7e308}}"
"/v1/rank|{\"images\":[\"$IMG\",\"$IMG2\"]}"
)
for r in "${reqs[@]}"; do
  path=${r%%|*}; body=${r#*|}
  a=$(curl -s 127.0.0.1:18081$path -H 'Content-Type: application/json' -d "$body")
  b=$(curl -s 127.0.0.1:18082$path -H 'Content-Type: application/json' -d "$body")
  if [ "$a" == "$b" ]; then echo "same $path (${#a} bytes: ${a:0:60})"; else echo "DIFF $path"; echo " old: ${a:0:300}"; echo " new: ${b:0:300}"; fi
done
for path in /v1/models /readyz /healthz; do
  a=$(curl -s 127.0.0.1:18081$path); b=$(curl -s 127.0.0.1:18082$path)
  [ "$a" == "$b" ] && echo "same $path" || { echo "DIFF $path"; echo " old: $a"; echo " new: $b"; }
done
head -c 768 /dev/urandom > $TMP/pix.bin
for p in 18081 18082; do
  { echo '{"prompts": ["a cat", "a dog"], "shape": [2, 8, 16, 3]}'; cat $TMP/pix.bin; } | curl -s -H 'Content-Type: application/x-icthp-tensor' --data-binary @- 127.0.0.1:$p/v1/reward > $TMP/t$p.json
  curl -s 127.0.0.1:$p/v1/rank -F prompt="a sunset" -F images=@testdata/demo/sunset.png -F images=@testdata/demo/apple.jpg > $TMP/m$p.json
done
cmp $TMP/t18081.json $TMP/t18082.json && echo "same tensor reward $(wc -c < $TMP/t18081.json)"
cmp $TMP/m18081.json $TMP/m18082.json && echo "same multipart rank $(wc -c < $TMP/m18081.json)"
