#!/usr/bin/env bash
# On the lent GPU machine, from the repository root, once deploy/gpu/stage.sh's chunks are in /root/stage:
#
#   deploy/gpu/measure.sh models    model-only ONNX Runtime, CUDA vs CPU, per workload and batch size, and
#                                   ONNX Runtime's warnings about the graphs (Memcpy nodes, CPU fallbacks);
#                                   MODEL_ONLY_S (3) seconds each, WORKLOADS (asr,clicks,bot)
#   deploy/gpu/measure.sh asr       workers bench asr, ours only, climbing to 1,024 real-time streams
#                                   (STREAMS=64,128,... to choose the ladder; PROCESSES=N to run ours as
#                                   `workers serve asr --processes N`, for when one process's front end is the limit;
#                                   SEARCH_PROCESSES finals' search processes per worker process, 6 / N by default:
#                                   500 streams of continuous speech need ~7 of this build machine's cores at beam 32)
#   deploy/gpu/measure.sh clicks    workers bench clicks, ours only (likewise bot); BENCH_S (15) seconds a phase
#
# Each fits in one device call (10 minutes). What it writes under $OUT comes back with the call: the JSON
# report, its log, and the workers' logs as logs.tgz. TensorFlow is not on that machine, so the TensorFlow
# baselines are measured on the CPU machine only.
set -uo pipefail
what="${1:?models, asr, clicks or bot}"
source /root/stage/install.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-$PWD/out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total,utilization.gpu --format=csv > "$out/gpu.txt" 2>&1
nproc >> "$out/gpu.txt"
case "$what" in
  models)
    python3 deploy/gpu/model_only.py --seconds "${MODEL_ONLY_S:-3}" --workloads "${WORKLOADS:-asr,clicks,bot}" \
      > "$out/model-only.json" 2> "$out/model-only.log"
    rc=$?
    grep -E "loaded on|Memcpy|fallback|CPU EP|assigned to" "$out/model-only.log" | sort | uniq -c | head -40
    python3 -c "import json,sys; [print(r) for r in json.load(open(sys.argv[1]))['rows']]" "$out/model-only.json"
    exit $rc ;;
  asr)
    search=${SEARCH_PROCESSES:-$(( (6 + ${PROCESSES:-1} - 1) / ${PROCESSES:-1} ))}
    python3 -m workers bench asr --systems ours --streams "${STREAMS:-64,128,256,384,512,640,768,1024}" \
      --processes "${PROCESSES:-1}" --worker-env "WORKERS_ASR_SEARCH_PROCESSES=$search" --seconds "${BENCH_S:-15}" \
      --json > "$out/asr.json" 2> "$out/asr.log" ;;
  clicks|bot)
    python3 -m workers bench "$what" --systems ours --processes "${PROCESSES:-1}" --seconds "${BENCH_S:-15}" --json \
      > "$out/$what.json" 2> "$out/$what.log" ;;
  *) echo "unknown: $what" >&2; exit 2 ;;
esac
rc=$?
logs=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('logs', ''))" "$out/$what.json" 2>/dev/null)
[ -n "$logs" ] && tar -czf "$out/logs.tgz" -C "$logs" . 2>/dev/null
grep -h -E "Memcpy|loaded on" "$logs"/*.log 2>/dev/null | sort | uniq -c | head -20
tail -5 "$out/$what.log"
python3 -c "
import json, sys
from workers.$( [ "$what" = asr ] && echo asr.bench_streams || echo devtools.bench.runner ) import format_table
print(format_table(json.load(open(sys.argv[1]))))" "$out/$what.json"
exit $rc
