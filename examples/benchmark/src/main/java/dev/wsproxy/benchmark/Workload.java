package dev.wsproxy.benchmark;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One workload of the issue, named by an id: {@code text64x50} (64 B text echo on 50 connections), {@code bin16kx50},
 * {@code bin1mx4}, {@code storm} (connect, one 64 B echo, close; {@code storm32} for 32 at a time), {@code idle1k},
 * {@code idle10k} (hold that many connections open).
 */
record Workload(String id, Kind kind, boolean text, int size, int connections) {

    enum Kind {
        ECHO, STORM, IDLE
    }

    /** The workloads, in the order the suite runs them. */
    static final String DEFAULTS = "text64x1,text64x50,text64x500,bin16kx50,bin1mx4,storm,idle1k,idle10k";

    /** Handshake cycles running at once in {@code storm}. */
    static final int DEFAULT_STORM_CONCURRENCY = 16;

    /** The small message of the storm and of the idle probe. */
    static final int SMALL = 64;

    private static final Pattern ECHO = Pattern.compile("(text|bin)(\\d+)([km]?)x(\\d+)");
    private static final Pattern STORM = Pattern.compile("storm(\\d+)?");
    private static final Pattern IDLE = Pattern.compile("idle(\\d+)(k?)");

    static Workload parse(String id) {
        String s = id.trim().toLowerCase(Locale.ROOT);
        Matcher m = ECHO.matcher(s);
        if (m.matches()) {
            int unit = switch (m.group(3)) {
                case "k" -> 1024;
                case "m" -> 1024 * 1024;
                default -> 1;
            };
            return new Workload(s, Kind.ECHO, m.group(1).equals("text"), Math.multiplyExact(Integer.parseInt(m.group(2)), unit),
                    Integer.parseInt(m.group(4)));
        }
        m = STORM.matcher(s);
        if (m.matches()) {
            int concurrency = m.group(1) == null ? DEFAULT_STORM_CONCURRENCY : Integer.parseInt(m.group(1));
            return new Workload(s, Kind.STORM, true, SMALL, concurrency);
        }
        m = IDLE.matcher(s);
        if (m.matches()) {
            int count = Integer.parseInt(m.group(1)) * (m.group(2).isEmpty() ? 1 : 1000);
            return new Workload(s, Kind.IDLE, true, SMALL, count);
        }
        throw new IllegalArgumentException("workload: " + id
                + " (expected: textNxC, binN[k|m]xC, storm[C] or idleN[k], like text64x50, bin1mx4, idle10k)");
    }

    static List<Workload> parseList(String ids) {
        List<Workload> list = new ArrayList<>();
        for (String id : ids.split(",")) {
            if (!id.isBlank()) {
                list.add(parse(id));
            }
        }
        return list;
    }

    /** A human label: {@code 64 B text ×50}. */
    String label() {
        return switch (kind) {
            case ECHO -> size(size) + (text ? " text" : " binary") + " echo ×" + connections;
            case STORM -> "handshake storm (connect, 64 B echo, close) ×" + connections;
            case IDLE -> "idle hold " + String.format(Locale.ROOT, "%,d", connections) + " connections";
        };
    }

    static String size(int bytes) {
        if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0) {
            return bytes / (1024 * 1024) + " MiB";
        }
        if (bytes >= 1024 && bytes % 1024 == 0) {
            return bytes / 1024 + " KiB";
        }
        return bytes + " B";
    }
}
