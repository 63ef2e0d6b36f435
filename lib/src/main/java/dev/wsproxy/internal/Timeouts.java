package dev.wsproxy.internal;

import java.time.Duration;

import dev.wsproxy.TimeoutPolicy;

/** The built-in {@link TimeoutPolicy}: four fixed durations. Also the per-session snapshot of any policy. */
public record Timeouts(Duration connectTimeout, Duration idleTimeout, Duration closeTimeout, Duration maxLifetime)
        implements TimeoutPolicy {

    public static final Timeouts DEFAULTS = new Timeouts(
            DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_CLOSE_TIMEOUT, Duration.ZERO);

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
                notNegativeOr(policy.maxLifetime(), Duration.ZERO));
    }

    private static Duration positiveOr(Duration value, Duration fallback) {
        return value == null || value.isNegative() || value.isZero() ? fallback : value;
    }

    private static Duration notNegativeOr(Duration value, Duration fallback) {
        return value == null || value.isNegative() ? fallback : value;
    }
}
