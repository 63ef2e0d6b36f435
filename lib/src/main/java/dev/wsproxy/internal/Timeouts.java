package dev.wsproxy.internal;

import java.time.Duration;

import dev.wsproxy.TimeoutPolicy;

/** The built-in {@link TimeoutPolicy}: five fixed durations. Also the per-session snapshot of any policy. */
public record Timeouts(Duration connectTimeout, Duration idleTimeout, Duration closeTimeout, Duration maxLifetime,
        Duration pingInterval) implements TimeoutPolicy {

    public static final Timeouts DEFAULTS = new Timeouts(
            DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_CLOSE_TIMEOUT, Duration.ZERO, Duration.ZERO);

    /**
     * Reads a policy once, for one session, and checks what a user implementation returned; a value out of range is
     * replaced by the default so that one bad answer cannot wedge a session.
     */
    static Timeouts copyOf(TimeoutPolicy policy) {
        if (policy instanceof Timeouts timeouts) {
            return timeouts;
        }
        return new Timeouts(
                positiveOr(policy.connectTimeout(), DEFAULT_CONNECT_TIMEOUT),
                notNegativeOr(policy.idleTimeout(), DEFAULT_IDLE_TIMEOUT),
                positiveOr(policy.closeTimeout(), DEFAULT_CLOSE_TIMEOUT),
                notNegativeOr(policy.maxLifetime(), Duration.ZERO),
                notNegativeOr(policy.pingInterval(), Duration.ZERO));
    }

    /**
     * Whether the proxy pings quiet legs: the interval is at least {@link #MIN_PING_INTERVAL} (a user's policy may
     * return less; Jetty would take a sub-millisecond one for no idle timeout at all) and shorter than the idle
     * timeout, if any.
     */
    boolean pings() {
        return pingInterval.compareTo(MIN_PING_INTERVAL) >= 0
                && (idleTimeout.isZero() || pingInterval.compareTo(idleTimeout) < 0);
    }

    /**
     * The idle timeout of each leg's connection: the ping interval when the proxy pings (the relay then measures the
     * idle timeout itself, see {@code Relay}), the idle timeout otherwise.
     */
    Duration connectionIdleTimeout() {
        return pings() ? pingInterval : idleTimeout;
    }

    private static Duration positiveOr(Duration value, Duration fallback) {
        return value == null || value.isNegative() || value.isZero() ? fallback : value;
    }

    private static Duration notNegativeOr(Duration value, Duration fallback) {
        return value == null || value.isNegative() ? fallback : value;
    }
}
