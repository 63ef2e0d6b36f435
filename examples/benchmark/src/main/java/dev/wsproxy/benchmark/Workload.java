package dev.wsproxy.benchmark;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One workload, named by an id: {@code text64x50} (64 B text echo on 50 connections, closed loop), {@code bin16kx50},
 * {@code bin1mx4}, {@code text64x50@10k} (the same echo at a fixed 10,000 messages a second over all connections,
 * open loop: see {@link Pacer}), {@code storm} (connect, one 64 B echo, close; {@code storm32} for 32 at a time),
 * {@code idle1k}, {@code idle10k} (hold that many connections open).
 *
 * @param rate messages a second of a {@link Kind#PACED} workload, 0 for the others
 */
record Workload(String id, Kind kind, boolean text, int size, int connections, int rate) {

    enum Kind {
        /** Closed-loop echo: each connection sends its next message when the echo of the last is back. */
        ECHO,
        /** Open-loop echo: messages go out at a fixed rate, whatever is in flight. */
        PACED,
        STORM,
        IDLE
    }

    /** The workloads, in the order the suite runs them. */
    static final String DEFAULTS = "text64x1,text64x50,text64x500,bin16kx50,bin1mx4,storm,idle1k,idle10k";

    /** Handshake cycles running at once in {@code storm}. */
    static final int DEFAULT_STORM_CONCURRENCY = 16;

    /** The small message of the storm and of the idle probe. */
    static final int SMALL = 64;

    private static final Pattern ECHO = Pattern.compile("(text|bin)(\\d+)([km]?)x(\\d+)(?:@(\\d+)(k?))?");
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
            int size = Math.multiplyExact(Integer.parseInt(m.group(2)), unit);
            int connections = Integer.parseInt(m.group(4));
            if (m.group(5) == null) {
                return new Workload(s, Kind.ECHO, m.group(1).equals("text"), size, connections, 0);
            }
            int rate = Math.multiplyExact(Integer.parseInt(m.group(5)), m.group(6).isEmpty() ? 1 : 1000);
            if (rate < 1 || connections < 1) {
                throw new IllegalArgumentException("workload: " + id + " (expected: a rate and connections above 0)");
            }
            return new Workload(s, Kind.PACED, m.group(1).equals("text"), size, connections, rate);
        }
        m = STORM.matcher(s);
        if (m.matches()) {
            int concurrency = m.group(1) == null ? DEFAULT_STORM_CONCURRENCY : Integer.parseInt(m.group(1));
            return new Workload(s, Kind.STORM, true, SMALL, concurrency, 0);
        }
        m = IDLE.matcher(s);
        if (m.matches()) {
            int count = Integer.parseInt(m.group(1)) * (m.group(2).isEmpty() ? 1 : 1000);
            return new Workload(s, Kind.IDLE, true, SMALL, count, 0);
        }
        throw new IllegalArgumentException("workload: " + id
                + " (expected: textNxC or binN[k|m]xC, optionally @R[k] for R messages/s, storm[C] or idleN[k],"
                + " like text64x50, bin1mx4, text64x50@10k, idle10k)");
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
            case ECHO -> echoLabel();
            case PACED -> echoLabel() + " at " + String.format(Locale.ROOT, "%,d", rate) + " msg/s";
            case STORM -> "handshake storm (connect, 64 B echo, close) ×" + connections;
            case IDLE -> "idle hold " + String.format(Locale.ROOT, "%,d", connections) + " connections";
        };
    }

    private String echoLabel() {
        return size(size) + (text ? " text" : " binary") + " echo ×" + connections;
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
