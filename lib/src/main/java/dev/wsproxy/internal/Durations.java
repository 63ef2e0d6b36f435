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

    private Durations() {
    }

    /** {@code duration}, or {@link #LONGEST} when it is longer; {@code null} stays {@code null}. */
    public static Duration capped(Duration duration) {
        return duration != null && duration.compareTo(LONGEST) > 0 ? LONGEST : duration;
    }
}
