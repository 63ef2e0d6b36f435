package dev.wsproxy.internal;

import java.time.Duration;

/**
 * The longest duration the proxy counts: 100 years. A user who means "forever" may pass a thousand years or
 * {@code ChronoUnit.FOREVER}, which overflow nanoseconds (beyond about 292 years) and milliseconds; every duration the
 * public API takes is capped here as it is stored, so that the proxy, Jetty and the JDK's schedulers can count it,
 * add two of them, and add one to a {@code System.nanoTime()}, without overflow.
 */
public final class Durations {

    /** 100 years: practically forever, and about a third of what nanoseconds count. */
    public static final Duration LONGEST = Duration.ofDays(36_525);
    private static final Duration ONE_MILLI = Duration.ofMillis(1);

    private Durations() {
    }

    /**
     * A positive duration in milliseconds, at least 1: timers and Jetty's timeouts count milliseconds, and 0 would
     * mean "at once, again and again" for a period (a health check's interval, a DNS refresh) and "never" for a
     * timeout. Sub-millisecond durations are valid in the API (positive), so they are rounded up, not refused.
     */
    public static long millis(Duration positive) {
        return Math.max(1, positive.toMillis());
    }

    /**
     * {@code duration}, or one millisecond when it is positive and shorter (Jetty takes timeouts in milliseconds, and
     * 0 means none); {@code null} stays {@code null}.
     */
    public static Duration atLeastOneMilli(Duration duration) {
        return duration != null && duration.compareTo(ONE_MILLI) < 0 && duration.compareTo(Duration.ZERO) > 0
                ? ONE_MILLI : duration;
    }

    /** {@code duration}, or {@link #LONGEST} when it is longer; {@code null} stays {@code null}. */
    public static Duration capped(Duration duration) {
        return duration != null && duration.compareTo(LONGEST) > 0 ? LONGEST : duration;
    }
}
