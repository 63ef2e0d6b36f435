#!/usr/bin/env bash
# CPU profile of a running JVM (the wsproxy target of run.sh, under load) with async-profiler, kernel frames included:
#
#   examples/benchmark/profile.sh PID [SECONDS] [OUT]
#
# Fetches async-profiler 3.0 from Maven Central once (tools.profiler:async-profiler), attaches it for SECONDS
# (default 20) with 100 µs sampling, and writes collapsed stacks to OUT (default target/profile-PID.collapsed): one
# line per stack, "frame;frame;... samples", for flame graph tools or grep. Attaching makes the JIT recompile for a
# few seconds: start it once the run's windows are under way, and read proportions, not absolute times.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pid=${1:?usage: profile.sh PID [SECONDS] [OUT]}
seconds=${2:-20}
out=${3:-$here/target/profile-$pid.collapsed}
version=3.0
jar=$HOME/.m2/repository/tools/profiler/async-profiler/$version/async-profiler-$version.jar
lib=$here/target/async-profiler-$version/libasyncProfiler.so
case "$(uname -m)" in
    x86_64) arch=linux-x64 ;;
    aarch64) arch=linux-arm64 ;;
    *) echo "profile.sh: no async-profiler library for $(uname -m)" >&2; exit 1 ;;
esac
if [ ! -f "$lib" ]; then
    [ -f "$jar" ] || mvn -B -q dependency:get -Dartifact=tools.profiler:async-profiler:$version
    mkdir -p "$(dirname "$lib")"
    unzip -o -q -j "$jar" "$arch/libasyncProfiler.so" -d "$(dirname "$lib")"
fi
mkdir -p "$(dirname "$out")"
java "$here/tools/AttachAgent.java" "$pid" "$lib" "start,event=cpu,interval=100us"
sleep "$seconds"
java "$here/tools/AttachAgent.java" "$pid" "$lib" "stop,file=$out,collapsed"
echo "profile.sh: $out"
