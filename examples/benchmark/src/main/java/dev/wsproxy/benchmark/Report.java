package dev.wsproxy.benchmark;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.function.Predicate;

/**
 * Turns the runs into Markdown tables: per workload and target, the median over the repetitions with the range
 * {@code (min–max)}, and ratios of medians to the baseline target (nginx) measured in the same suite.
 */
final class Report {

    private Report() {
    }

    /** Median, min and max of some values; the median of an even count is the mean of the middle two. */
    record Spread(double median, double min, double max, int count) {

        static Spread of(Collection<Double> values) {
            double[] sorted = values.stream().filter(Objects::nonNull).filter(v -> !v.isNaN())
                    .mapToDouble(Double::doubleValue).sorted().toArray();
            if (sorted.length == 0) {
                return new Spread(Double.NaN, Double.NaN, Double.NaN, 0);
            }
            int n = sorted.length;
            double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
            return new Spread(median, sorted[0], sorted[n - 1], n);
        }

        boolean present() {
            return count > 0;
        }

        String format() {
            if (!present()) {
                return "–";
            }
            if (count == 1 || number(min).equals(number(max))) {
                return number(median);
            }
            return number(median) + " (" + number(min) + "–" + number(max) + ")";
        }
    }

    /** Three significant figures at most, thousands grouped: 16.3, 2.41, 1,234, 98,765. */
    static String number(double value) {
        if (Double.isNaN(value) || Double.isInfinite(value)) {
            return "–";
        }
        double abs = Math.abs(value);
        if (abs >= 100) {
            return String.format(Locale.ROOT, "%,.0f", value);
        }
        if (abs >= 10) {
            return String.format(Locale.ROOT, "%.1f", value);
        }
        return String.format(Locale.ROOT, "%.2f", value);
    }

    static String ratio(Spread value, Spread baseline) {
        if (!value.present() || !baseline.present() || baseline.median() == 0) {
            return "–";
        }
        return String.format(Locale.ROOT, "%.2f×", value.median() / baseline.median());
    }

    static Spread spread(List<RunResult> runs, String metric) {
        List<Double> values = new ArrayList<>();
        for (RunResult run : runs) {
            Double v = run.metrics().get(metric);
            if (v != null) {
                values.add(v);
            }
        }
        return Spread.of(values);
    }

    /** The Markdown tables of {@code results}, workloads and targets in the order given. */
    static String markdown(List<Workload> workloads, List<String> targets, List<RunResult> results, String baseline) {
        StringBuilder out = new StringBuilder();
        table(out, "Echo (closed loop: each connection sends one message and waits for its echo)", workloads,
                targets, results, baseline, w -> w.kind() == Workload.Kind.ECHO,
                new String[] {RunResult.MSG_PER_S, RunResult.MB_PER_S, RunResult.P50_US, RunResult.P99_US,
                        RunResult.P999_US, RunResult.CPU_US_PER_MSG, RunResult.CORE_PERCENT, RunResult.CSW_PER_MSG,
                        RunResult.ALLOC_PER_MSG, RunResult.JIT_MS},
                new String[] {"msg/s", "MB/s", "p50 µs", "p99 µs", "p99.9 µs", "proxy CPU µs/msg", "proxy core %",
                        "ctx switches/msg", "alloc B/msg", "JIT ms"},
                new String[] {RunResult.CPU_US_PER_MSG, RunResult.P99_US}, new String[] {"CPU ×" + baseline,
                        "p99 ×" + baseline});
        table(out, "Echo at a fixed rate (open loop: messages go out on schedule, whatever is in flight)", workloads,
                targets, results, baseline, w -> w.kind() == Workload.Kind.PACED,
                new String[] {RunResult.SENT_PER_S, RunResult.MSG_PER_S, RunResult.P50_US, RunResult.P99_US,
                        RunResult.P999_US, RunResult.CPU_US_PER_MSG, RunResult.CORE_PERCENT, RunResult.CSW_PER_MSG,
                        RunResult.PACER_LAG_P99_MS, RunResult.PACER_LAG_MAX_MS, RunResult.JIT_MS},
                new String[] {"sent msg/s", "echoed msg/s", "p50 µs", "p99 µs", "p99.9 µs", "proxy CPU µs/msg",
                        "proxy core %", "ctx switches/msg", "pacer lag p99 ms", "pacer lag max ms", "JIT ms"},
                new String[] {RunResult.P99_US, RunResult.CPU_US_PER_MSG}, new String[] {"p99 ×" + baseline,
                        "CPU ×" + baseline});
        table(out, "Handshake storm (each cycle: connect, one 64 B echo, close)", workloads, targets, results,
                baseline, w -> w.kind() == Workload.Kind.STORM,
                new String[] {RunResult.MSG_PER_S, RunResult.P50_US, RunResult.P99_US, RunResult.CPU_US_PER_MSG,
                        RunResult.CORE_PERCENT, RunResult.CSW_PER_MSG, RunResult.ALLOC_PER_MSG, RunResult.JIT_MS},
                new String[] {"cycles/s", "cycle p50 µs", "cycle p99 µs", "proxy CPU µs/cycle", "proxy core %",
                        "ctx switches/cycle", "alloc B/cycle", "JIT ms"},
                new String[] {RunResult.CPU_US_PER_MSG, RunResult.MSG_PER_S}, new String[] {"CPU ×" + baseline,
                        "cycles/s ×" + baseline});
        table(out, "Idle hold (each connection proved by one echo, then idle)", workloads, targets, results,
                baseline, w -> w.kind() == Workload.Kind.IDLE,
                new String[] {RunResult.CONNECTIONS, RunResult.OPEN_PER_S, RunResult.RSS_KIB_PER_CONN,
                        RunResult.HEAP_KIB_PER_CONN, RunResult.MEM_KIB_PER_CONN, RunResult.THREADS_BEFORE,
                        RunResult.THREADS, RunResult.HOLD_CORE_PERCENT},
                new String[] {"conns", "opened/s", "RSS Δ KiB/conn", "heap Δ KiB/conn", "memory KiB/conn",
                        "threads before", "threads held", "proxy core % held"},
                new String[] {RunResult.MEM_KIB_PER_CONN}, new String[] {"memory ×" + baseline});
        return out.toString();
    }

    private static void table(StringBuilder out, String title, List<Workload> workloads, List<String> targets,
            List<RunResult> results, String baseline, Predicate<Workload> kind, String[] metrics, String[] headers,
            String[] ratioMetrics, String[] ratioHeaders) {
        List<Workload> selected = workloads.stream().filter(kind).toList();
        if (selected.isEmpty()) {
            return;
        }
        out.append("**").append(title).append("**\n\n");
        out.append("| workload | target |");
        for (String h : headers) {
            out.append(' ').append(h).append(" |");
        }
        for (String h : ratioHeaders) {
            out.append(' ').append(h).append(" |");
        }
        out.append(" runs | errors |\n|---|---|");
        out.append("---:|".repeat(headers.length + ratioHeaders.length + 2)).append('\n');
        for (Workload workload : selected) {
            List<RunResult> base = runs(results, workload, baseline);
            for (String target : targets) {
                List<RunResult> runs = runs(results, workload, target);
                if (runs.isEmpty()) {
                    continue;
                }
                out.append("| ").append(workload.label()).append(" | ").append(target).append(" |");
                for (String metric : metrics) {
                    out.append(' ').append(spread(runs, metric).format()).append(" |");
                }
                for (String metric : ratioMetrics) {
                    String cell = target.equals(baseline) ? "1.00×" : ratio(spread(runs, metric), spread(base, metric));
                    out.append(' ').append(cell).append(" |");
                }
                long errors = runs.stream().mapToLong(RunResult::errors).sum();
                out.append(' ').append(runs.size()).append(" | ").append(errors).append(" |\n");
            }
        }
        out.append('\n');
    }

    static List<RunResult> runs(List<RunResult> results, Workload workload, String target) {
        return results.stream().filter(r -> r.workload().id().equals(workload.id()) && r.target().equals(target))
                .toList();
    }

    /** One progress line for standard error. */
    static String progress(RunResult r) {
        StringBuilder line = new StringBuilder();
        line.append(r.workload().id()).append(" rep ").append(r.rep()).append(' ').append(r.target()).append(':');
        for (Map.Entry<String, Double> e : r.metrics().entrySet()) {
            line.append(' ').append(e.getKey()).append('=').append(number(e.getValue()));
        }
        line.append(" errors=").append(r.errors());
        if (r.firstError() != null) {
            line.append(" (first: ").append(r.firstError()).append(')');
        }
        return line.toString();
    }
}
