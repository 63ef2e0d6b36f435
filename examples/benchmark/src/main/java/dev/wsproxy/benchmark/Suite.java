package dev.wsproxy.benchmark;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The load generator's suite: every workload against every target, targets alternating (A B C A B C ...) for each
 * repetition so that drift on a shared machine spreads over all of them, then the Markdown tables.
 *
 * <pre>
 * java -jar wsproxy-benchmark.jar suite \
 *     --target direct=ws://127.0.0.1:19001/ \
 *     --target wsproxy=ws://127.0.0.1:19002/,pid=1234,admin=19101,pretouch,warmup \
 *     --target nginx=ws://127.0.0.1:19003/,pid=1240 \
 *     [--workloads text64x1,text64x50,...] [--reps 3] [--duration 10] [--run-warmup 3] [--warmup 30]
 *     [--no-jit-settle]
 *     [--source-addresses 127.0.0.2,127.0.0.3] [--baseline nginx] [--out results.tsv] [--max-total 1800]
 * </pre>
 */
final class Suite {

    /** The workloads that warm a JVM target up before the first measured run, in turn. */
    static final String WARMUP_WORKLOADS = "text64x50,bin16kx50,storm,bin1mx4,text64x500";

    /** A warm-up round over the mix that kept the JIT compilers busy for less than this has settled. */
    static final long SETTLED_JIT_MILLIS = 100;
    /** Each workload's share of a settling round. */
    static final Duration SETTLE_SLICE = Duration.ofSeconds(2);

    private Suite() {
    }

    /** One pass over {@code mix}, {@code slice} of load each, nothing measured. */
    private static void warmUp(Runs runs, Target target, List<Workload> mix, Duration slice, PrintStream log)
            throws Exception {
        for (Workload w : mix) {
            RunResult r = w.kind() == Workload.Kind.STORM
                    ? runs.storm(target, w, 0, slice, Duration.ZERO)
                    : runs.echo(target, w, 0, slice, Duration.ZERO);
            if (r.errors() > 0) {
                log.println("warning: warm-up " + Report.progress(r));
            }
        }
    }

    /**
     * More warm-up rounds until the target's JIT compilers go quiet: a round over the mix (2 s each) during which they
     * compiled for less than {@value #SETTLED_JIT_MILLIS} ms, or {@code cap} of rounds. A JVM on one core compiles the
     * handshake path for a minute or more: measured windows that still compile charge the compilers' CPU to the
     * messages (a storm window at 3.3 s of JIT cost 826 µs per cycle, the same code at none 216 µs).
     */
    private static void settleJit(Runs runs, Target target, List<Workload> mix, Duration cap, long startNanos,
            PrintStream log) throws Exception {
        long until = System.nanoTime() + cap.toNanos();
        while (true) {
            long before = AdminPort.queryJitMillis(target.uri().getHost(), target.adminPort());
            warmUp(runs, target, mix, SETTLE_SLICE, log);
            long compiled = AdminPort.queryJitMillis(target.uri().getHost(), target.adminPort()) - before;
            boolean settled = before < 0 || compiled < SETTLED_JIT_MILLIS;
            boolean out = System.nanoTime() - until > 0;
            log.printf(Locale.ROOT, "[%4.0fs] warm-up round of %s: JIT %d ms%s%n", elapsed(startNanos),
                    target.name(), compiled, settled ? ", settled" : out ? ", still compiling: giving up" : "");
            if (settled || out) {
                return;
            }
        }
    }

    static void run(Args args) throws Exception {
        List<Target> targets = args.all("--target").stream().map(Target::parse).toList();
        if (targets.isEmpty()) {
            throw new IllegalArgumentException("--target: none (expected: at least one name=ws://host:port/)");
        }
        List<Workload> workloads = Workload.parseList(args.string("--workloads", Workload.DEFAULTS));
        int reps = args.intValue("--reps", 3);
        Duration window = args.seconds("--duration", Duration.ofSeconds(10));
        Duration runWarmup = args.seconds("--run-warmup", Duration.ofSeconds(3));
        Duration warmup = args.seconds("--warmup", Duration.ofSeconds(30));
        boolean settleJit = !args.flag("--no-jit-settle");
        Duration settle = args.seconds("--idle-settle", Duration.ofSeconds(1));
        Duration maxTotal = args.seconds("--max-total", Duration.ofMinutes(30));
        long maxMessages = args.longValue("--max-messages", 100_000_000L);
        int connectConcurrency = args.intValue("--connect-concurrency", Runs.DEFAULT_CONNECT_CONCURRENCY);
        List<String> sources = sourceAddresses(args.string("--source-addresses", ""));
        String baseline = args.string("--baseline", "nginx");
        String out = args.string("--out", null);
        args.requireAllUsed();
        if (reps < 1) {
            throw new IllegalArgumentException("--reps: " + reps + " (expected: >= 1)");
        }
        if (!ProcStats.available()) {
            System.err.println("warning: no /proc: no CPU, RSS or thread figures");
        }

        long startNanos = System.nanoTime();
        long deadline = startNanos + maxTotal.toNanos();
        List<RunResult> results = new ArrayList<>();
        Set<String> notes = new LinkedHashSet<>();
        PrintStream log = System.err;
        try (LoadClient plain = new LoadClient(List.of());
                LoadClient spread = sources.isEmpty() ? null : new LoadClient(sources)) {
            Runs runs = new Runs(plain, connectConcurrency, maxMessages);
            Runs idleRuns = new Runs(spread != null ? spread : plain, connectConcurrency, maxMessages);

            for (Target target : targets) {
                if (target.warmup() && !warmup.isZero()) {
                    log.printf(Locale.ROOT, "[%4.0fs] warm-up of %s: %s s over %s%n", elapsed(startNanos),
                            target.name(), warmup.toSeconds(), WARMUP_WORKLOADS);
                    List<Workload> mix = Workload.parseList(WARMUP_WORKLOADS);
                    warmUp(runs, target, mix, warmup.dividedBy(mix.size()), log);
                    if (target.adminPort() >= 0 && settleJit) {
                        settleJit(runs, target, mix, warmup.multipliedBy(3), startNanos, log);
                    }
                }
            }

            // What each target's process holds before the first measured run: the reference of the idle holds' RSS.
            Map<String, ProcStats.Sample> baselines = new HashMap<>();
            for (Target target : targets) {
                if (target.pid() > 0) {
                    baselines.put(target.name(), ProcStats.sample(target.pid()));
                }
            }

            outer:
            for (Workload workload : workloads) {
                for (int rep = 1; rep <= reps; rep++) {
                    for (Target target : targets) {
                        if (System.nanoTime() > deadline) {
                            log.println("warning: --max-total " + maxTotal.toSeconds() + " s reached: stopping");
                            break outer;
                        }
                        int count = workload.connections();
                        if (workload.kind() == Workload.Kind.IDLE) {
                            count = idleCount(workload, target, notes);
                        }
                        RunResult result = switch (workload.kind()) {
                            case ECHO -> runs.echo(target, workload, rep, runWarmup, window);
                            case PACED -> runs.paced(target, workload, rep, runWarmup, window);
                            case STORM -> runs.storm(target, workload, rep, runWarmup, window);
                            case IDLE -> idleRuns.idle(target, workload, count, rep, settle,
                                    baselines.get(target.name()));
                        };
                        results.add(result);
                        log.printf(Locale.ROOT, "[%4.0fs] %s%n", elapsed(startNanos), Report.progress(result));
                        if (out != null) {
                            Files.writeString(Path.of(out), result.tsv() + "\n", StandardCharsets.UTF_8,
                                    StandardOpenOption.CREATE, StandardOpenOption.APPEND);
                        }
                    }
                }
            }
        }
        System.out.printf(Locale.ROOT, "reps=%d, window=%ss, run warm-up=%ss, global warm-up=%ss, %.0f s in all%n%n",
                reps, seconds(window), seconds(runWarmup), seconds(warmup), elapsed(startNanos));
        System.out.print(Report.markdown(workloads, targets.stream().map(Target::name).toList(), results, baseline));
        for (String note : notes) {
            System.out.println("Note: " + note);
        }
    }

    private static String seconds(Duration d) {
        return Report.number(d.toMillis() / 1000.0);
    }

    private static double elapsed(long startNanos) {
        return (System.nanoTime() - startNanos) / 1e9;
    }

    /** Descriptors a process keeps for itself besides connections (jars, epoll, pipes, listeners). */
    static final int RESERVED_FILES = 2000;

    /**
     * How many connections an idle hold can open: the workload's count, or less when this process or the target
     * may not open enough files (a proxy holds two per connection). Where the hard limit cannot be raised, a
     * "10,000" hold then holds what fits, and says so.
     */
    static int idleCount(Workload workload, Target target, Set<String> notes) {
        long count = workload.connections();
        long own = maxOpenFiles();
        if (own > 0 && own - RESERVED_FILES < count) {
            count = own - RESERVED_FILES;
            notes.add(workload.id() + " held " + count + " connections: this generator may open " + own + " files");
        }
        if (target.pid() > 0) {
            long theirs = maxOpenFiles(target.pid());
            if (theirs > 0 && (theirs - RESERVED_FILES) / 2 < count) {
                count = (theirs - RESERVED_FILES) / 2;
                notes.add(workload.id() + " on " + target.name() + " held " + count + " connections: the proxy may open "
                        + theirs + " files (two per proxied connection) (raise ulimit -n, hard limit included, to hold more)");
            }
        }
        return (int) Math.max(1, count);
    }

    private static long maxOpenFiles() {
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.UnixOperatingSystemMXBean os) {
            return os.getMaxFileDescriptorCount();
        }
        return -1;
    }

    /** The soft limit on open files of {@code pid} ({@code /proc/PID/limits}), or -1. */
    static long maxOpenFiles(long pid) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/limits"))) {
                if (line.startsWith("Max open files")) {
                    String soft = line.substring("Max open files".length()).trim().split("\\s+")[0];
                    return soft.equals("unlimited") ? Long.MAX_VALUE : Long.parseLong(soft);
                }
            }
        } catch (IOException | RuntimeException e) {
            // Not Linux, or gone.
        }
        return -1;
    }

    /** {@code 127.0.0.2-127.0.0.5} or {@code 127.0.0.2,127.0.0.3}: loopback addresses only. */
    static List<String> sourceAddresses(String spec) {
        List<String> list = new ArrayList<>();
        for (String part : spec.split(",")) {
            part = part.trim();
            if (part.isEmpty()) {
                continue;
            }
            int dash = part.indexOf('-');
            if (dash > 0) {
                String first = part.substring(0, dash);
                String last = part.substring(dash + 1);
                String prefix = first.substring(0, first.lastIndexOf('.') + 1);
                int from = Integer.parseInt(first.substring(prefix.length()));
                int to = Integer.parseInt(last.substring(last.lastIndexOf('.') + 1));
                for (int i = from; i <= to; i++) {
                    list.add(prefix + i);
                }
            } else {
                list.add(part);
            }
        }
        for (String address : list) {
            if (!address.startsWith("127.")) {
                throw new IllegalArgumentException("source address: " + address + " (expected: loopback, 127.x.y.z)");
            }
        }
        return list;
    }
}
