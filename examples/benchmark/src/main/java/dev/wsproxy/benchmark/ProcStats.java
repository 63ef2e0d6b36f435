package dev.wsproxy.benchmark;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads a process tree's CPU time, resident memory and thread count from Linux's {@code /proc}.
 *
 * <p>A tree is a process and its descendants, so an nginx master pid covers its worker. CPU time is
 * {@code utime + stime} of {@code /proc/PID/stat}, in clock ticks: it includes threads that have ended, and it keeps
 * counting when the generator is the bottleneck, which is why CPU per message stays comparable between targets.
 */
final class ProcStats {

    /**
     * One sample of a process tree. {@code contextSwitches} sums {@code voluntary_ctxt_switches} and
     * {@code nonvoluntary_ctxt_switches} over the live threads ({@code /proc/PID/task/*}/status): threads that ended
     * between two samples take their count with them, so a difference is a lower bound when a pool shrinks.
     */
    record Sample(long cpuNanos, long rssBytes, int threads, long contextSwitches) {
    }

    private static final Path PROC = Path.of("/proc");
    private static volatile long clockTicksPerSecond;

    private ProcStats() {
    }

    /** Tells whether {@code /proc} can be read (Linux). */
    static boolean available() {
        return Files.isReadable(PROC.resolve("self/stat"));
    }

    /** Samples {@code pid} and its descendants; processes that vanish meanwhile count as zero. */
    static Sample sample(long pid) {
        long ticks = 0;
        long rssKiB = 0;
        int threads = 0;
        long switches = 0;
        for (long p : tree(pid)) {
            try {
                ticks += cpuTicks(Files.readString(PROC.resolve(p + "/stat")));
                String status = Files.readString(PROC.resolve(p + "/status"));
                rssKiB += statusField(status, "VmRSS:");
                threads += (int) statusField(status, "Threads:");
                switches += contextSwitches(p);
            } catch (IOException e) {
                // The process ended between listing and reading.
            }
        }
        return new Sample(ticks * 1_000_000_000L / clockTicksPerSecond(), rssKiB * 1024, threads, switches);
    }

    /** Voluntary and involuntary context switches of every live thread of {@code pid}. */
    static long contextSwitches(long pid) {
        long switches = 0;
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(PROC.resolve(pid + "/task"), "[0-9]*")) {
            for (Path task : tasks) {
                try {
                    String status = Files.readString(task.resolve("status"));
                    switches += statusField(status, "\nvoluntary_ctxt_switches:")
                            + statusField(status, "nonvoluntary_ctxt_switches:");
                } catch (IOException e) {
                    // The thread ended between listing and reading.
                }
            }
        } catch (IOException e) {
            return 0;
        }
        return switches;
    }

    /** Returns {@code pid} followed by its descendants. */
    static List<Long> tree(long pid) {
        List<long[]> parents = new ArrayList<>();
        try (DirectoryStream<Path> dirs = Files.newDirectoryStream(PROC, "[0-9]*")) {
            for (Path dir : dirs) {
                try {
                    long child = Long.parseLong(dir.getFileName().toString());
                    parents.add(new long[] {child, parentPid(Files.readString(dir.resolve("stat")))});
                } catch (IOException | RuntimeException e) {
                    // Gone, or not a process directory.
                }
            }
        } catch (IOException e) {
            return List.of(pid);
        }
        List<Long> tree = new ArrayList<>();
        tree.add(pid);
        for (int i = 0; i < tree.size(); i++) {
            long parent = tree.get(i);
            for (long[] pair : parents) {
                if (pair[1] == parent && pair[0] != parent) {
                    tree.add(pair[0]);
                }
            }
        }
        return tree;
    }

    /** Parses {@code utime + stime} (fields 14 and 15) of a {@code /proc/PID/stat} line. */
    static long cpuTicks(String stat) {
        String[] fields = afterComm(stat);
        // fields[0] is field 3 (state): utime is field 14, stime field 15.
        return Long.parseLong(fields[11]) + Long.parseLong(fields[12]);
    }

    static long parentPid(String stat) {
        return Long.parseLong(afterComm(stat)[1]);
    }

    /** The comm field may hold spaces and parentheses: split after its last {@code ')'}. */
    private static String[] afterComm(String stat) {
        int end = stat.lastIndexOf(')');
        return stat.substring(end + 2).trim().split(" +");
    }

    /** A numeric field of {@code /proc/PID/status}, like {@code VmRSS:   1234 kB}; 0 when absent. */
    static long statusField(String status, String name) {
        int at = status.indexOf(name);
        if (at < 0) {
            return 0;
        }
        int i = at + name.length();
        while (i < status.length() && Character.isWhitespace(status.charAt(i))) {
            i++;
        }
        int start = i;
        while (i < status.length() && Character.isDigit(status.charAt(i))) {
            i++;
        }
        return start == i ? 0 : Long.parseLong(status.substring(start, i));
    }

    /** {@code getconf CLK_TCK}, 100 on every mainstream Linux; asked once. */
    static long clockTicksPerSecond() {
        long ticks = clockTicksPerSecond;
        if (ticks > 0) {
            return ticks;
        }
        ticks = 100;
        try {
            Process process = new ProcessBuilder("getconf", "CLK_TCK").redirectErrorStream(true).start();
            String out = new String(process.getInputStream().readAllBytes()).trim();
            if (process.waitFor() == 0 && out.matches("\\d+")) {
                ticks = Long.parseLong(out);
            }
        } catch (IOException e) {
            // Keep 100.
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        clockTicksPerSecond = ticks;
        return ticks;
    }
}
