package dev.wsproxy.benchmark;

import java.net.URI;

/**
 * What the generator measures: a WebSocket URI and, for the figures of the process behind it, its pid (its
 * descendants count too: nginx's worker) and optionally the loopback port of its {@link AdminPort}.
 *
 * <p>Written {@code name=ws://127.0.0.1:19002/[,pid=N][,admin=PORT][,pretouch][,warmup]}: {@code pretouch} says
 * the JVM's heap is pre-touched ({@code -XX:+AlwaysPreTouch}), so RSS growth is off-heap only and heap growth is
 * added to it; {@code warmup} gives the target the global warm-up before the first measured run.
 */
record Target(String name, URI uri, long pid, int adminPort, boolean pretouch, boolean warmup) {

    static Target parse(String spec) {
        int eq = spec.indexOf('=');
        if (eq <= 0) {
            throw new IllegalArgumentException("target: " + spec + " (expected: name=ws://host:port/[,pid=N][,admin=PORT])");
        }
        String name = spec.substring(0, eq);
        String[] parts = spec.substring(eq + 1).split(",");
        URI uri = URI.create(parts[0]);
        if (!"ws".equals(uri.getScheme()) || uri.getHost() == null) {
            throw new IllegalArgumentException("target " + name + ": " + parts[0] + " (expected: a ws:// URI)");
        }
        long pid = -1;
        int admin = -1;
        boolean pretouch = false;
        boolean warmup = false;
        for (int i = 1; i < parts.length; i++) {
            String part = parts[i].trim();
            if (part.startsWith("pid=")) {
                pid = Long.parseLong(part.substring(4));
            } else if (part.startsWith("admin=")) {
                admin = Integer.parseInt(part.substring(6));
            } else if (part.equals("pretouch")) {
                pretouch = true;
            } else if (part.equals("warmup")) {
                warmup = true;
            } else if (!part.isEmpty()) {
                throw new IllegalArgumentException("target " + name + ": " + part
                        + " (expected: pid=N, admin=PORT, pretouch or warmup)");
            }
        }
        return new Target(name, uri, pid, admin, pretouch, warmup);
    }
}
