package dev.wsproxy.benchmark;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** {@code --name value} and {@code --flag} command-line options; a repeated option keeps every value. */
final class Args {

    private final Map<String, List<String>> values = new LinkedHashMap<>();
    private final Set<String> used = new HashSet<>();

    Args(String[] args) {
        for (int i = 0; i < args.length; i++) {
            String name = args[i];
            if (!name.startsWith("--")) {
                throw new IllegalArgumentException("option: " + name + " (expected: --name [value])");
            }
            String value = i + 1 < args.length && !args[i + 1].startsWith("--") ? args[++i] : "true";
            values.computeIfAbsent(name, k -> new ArrayList<>()).add(value);
        }
    }

    String string(String name, String fallback) {
        List<String> all = all(name);
        return all.isEmpty() ? fallback : all.get(all.size() - 1);
    }

    List<String> all(String name) {
        used.add(name);
        return values.getOrDefault(name, List.of());
    }

    int intValue(String name, int fallback) {
        String value = string(name, null);
        try {
            return value == null ? fallback : Integer.parseInt(value);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + ": " + value + " (expected: an integer)", e);
        }
    }

    long longValue(String name, long fallback) {
        String value = string(name, null);
        try {
            return value == null ? fallback : Long.parseLong(value);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + ": " + value + " (expected: an integer)", e);
        }
    }

    /** Seconds, fractions allowed: {@code 2.5}. */
    Duration seconds(String name, Duration fallback) {
        String value = string(name, null);
        try {
            return value == null ? fallback : Duration.ofMillis(Math.round(Double.parseDouble(value) * 1000));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + ": " + value + " (expected: seconds, like 10 or 2.5)", e);
        }
    }

    boolean flag(String name) {
        return Boolean.parseBoolean(string(name, "false"));
    }

    /** Fails on options nobody asked for: a typo must not silently run the defaults. */
    void requireAllUsed() {
        for (String name : values.keySet()) {
            if (!used.contains(name)) {
                throw new IllegalArgumentException("option: " + name + " (expected: one of " + used + ")");
            }
        }
    }
}
