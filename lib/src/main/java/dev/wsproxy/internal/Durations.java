package dev.wsproxy.internal;

import java.time.Duration;

/**
 * The longest duration the proxy counts: 100 years. A user who means "forever" may pass a thousand years or
 * {@code ChronoUnit.FOREVER}, which overflow nanoseconds (beyond about 292 years) and milliseconds; every duration the
 * public API takes is capped here as it is stored ({@link #stored}), so that the proxy, Jetty and the JDK's schedulers
 * can count it, add two of them, and add one to a {@code System.nanoTime()}, without overflow.
 */
public final class Durations {

    /** 100 years: practically forever, and about a third of what nanoseconds count. */
    public static final Duration LONGEST = Duration.ofDays(36_525);
    private static final Duration ONE_MILLI = Duration.ofMillis(1);

    private Durations() {
    }

    /**
     * A duration as the proxy stores it wherever the API takes one: {@link #LONGEST} when it is longer, one
     * millisecond when it is positive and shorter (timers and Jetty's timeouts count milliseconds, where 0 would mean
     * "none" for a timeout and "again at once" for a period), itself otherwise; {@code null} stays {@code null}.
     */
    public static Duration stored(Duration duration) {
        if (duration == null || duration.isZero() || duration.isNegative()) {
            return duration;
        }
        return duration.compareTo(LONGEST) > 0 ? LONGEST : duration.compareTo(ONE_MILLI) < 0 ? ONE_MILLI : duration;
    }
}
