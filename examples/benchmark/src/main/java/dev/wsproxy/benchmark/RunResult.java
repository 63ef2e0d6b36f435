package dev.wsproxy.benchmark;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The figures of one measured run of one workload against one target. Metric names are the constants below; a
 * figure that cannot be measured for a target (no pid, no admin port) is absent.
 */
record RunResult(Workload workload, String target, int rep, Map<String, Double> metrics, long errors,
        String firstError) {

    static final String MSG_PER_S = "msg/s";
    /** Messages sent per second by an open-loop run's pacer. */
    static final String SENT_PER_S = "sent/s";
    /** How late an open-loop run's pacer sent behind its schedule in the window: 99th percentile and worst. */
    static final String PACER_LAG_P99_MS = "pacer lag p99 ms";
    static final String PACER_LAG_MAX_MS = "pacer lag max ms";
    static final String MB_PER_S = "MB/s";
    static final String P50_US = "p50 µs";
    static final String P99_US = "p99 µs";
    static final String P999_US = "p99.9 µs";
    static final String CPU_US_PER_MSG = "CPU µs/msg";
    static final String CORE_PERCENT = "core %";
    static final String CSW_PER_MSG = "ctx switches/msg";
    static final String ALLOC_PER_MSG = "alloc B/msg";
    static final String JIT_MS = "JIT ms";
    static final String CONNECTIONS = "conns";
    static final String RSS_KIB_PER_CONN = "RSS KiB/conn";
    static final String HEAP_KIB_PER_CONN = "heap KiB/conn";
    static final String MEM_KIB_PER_CONN = "mem KiB/conn";
    static final String THREADS_BEFORE = "threads before";
    static final String THREADS = "threads";
    /** The proxy's CPU while the connections are held idle, in % of one core (keep-alive pings, timers). */
    static final String HOLD_CORE_PERCENT = "hold core %";
    static final String OPEN_PER_S = "opened/s";

    /** One tab-separated line: workload, target, rep, errors, then {@code name=value} pairs. */
    String tsv() {
        StringBuilder line = new StringBuilder();
        line.append(workload.id()).append('\t').append(target).append('\t').append(rep).append('\t').append(errors);
        for (Map.Entry<String, Double> e : metrics.entrySet()) {
            line.append('\t').append(e.getKey()).append('=').append(String.format(Locale.ROOT, "%.3f", e.getValue()));
        }
        if (firstError != null) {
            line.append("\terror=").append(firstError.replace('\t', ' ').replace('\n', ' '));
        }
        return line.toString();
    }

    static Map<String, Double> newMetrics() {
        return new LinkedHashMap<>();
    }
}
