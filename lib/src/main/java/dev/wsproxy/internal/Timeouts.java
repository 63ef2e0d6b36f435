package dev.wsproxy.internal;

import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.TimeoutPolicy;

/** The built-in {@link TimeoutPolicy}: five fixed durations. Also the per-session snapshot of any policy. */
public record Timeouts(Duration connectTimeout, Duration idleTimeout, Duration closeTimeout, Duration maxLifetime,
        Duration pingInterval) implements TimeoutPolicy {

    public static final Timeouts DEFAULTS = new Timeouts(
            DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_CLOSE_TIMEOUT, Duration.ZERO, Duration.ZERO);

    private static final Logger LOG = LoggerFactory.getLogger(Timeouts.class);
    private static final Duration LONGEST_NANOS = Duration.ofNanos(Long.MAX_VALUE);
    /** The classes of the user policies a value out of range was logged for: once each, not once per session. */
    private static final Set<Class<?>> WARNED = ConcurrentHashMap.newKeySet();

    /**
     * Reads a policy once, for one session, and checks what a user implementation returned; a value out of range is
     * replaced by the default so that one bad answer cannot wedge a session, and a ping interval the proxy cannot
     * use means no pings. Either is logged at WARN, once per policy class.
     */
    static Timeouts copyOf(TimeoutPolicy policy) {
        if (policy instanceof Timeouts timeouts) {
            return timeouts;
        }
        Duration connect = policy.connectTimeout();
        Duration idle = policy.idleTimeout();
        Duration close = policy.closeTimeout();
        Duration lifetime = policy.maxLifetime();
        Duration ping = policy.pingInterval();
        Timeouts copy = new Timeouts(
                positiveOr(connect, DEFAULT_CONNECT_TIMEOUT),
                notNegativeOr(idle, DEFAULT_IDLE_TIMEOUT),
                positiveOr(close, DEFAULT_CLOSE_TIMEOUT),
                notNegativeOr(lifetime, Duration.ZERO),
                notNegativeOr(ping, Duration.ZERO));
        // The checks above return the value itself when it is in range.
        boolean replaced = copy.connectTimeout != connect || copy.idleTimeout != idle || copy.closeTimeout != close
                || copy.maxLifetime != lifetime || copy.pingInterval != ping;
        if ((replaced || !(copy.pingInterval.isZero() || copy.pings())) && WARNED.add(policy.getClass())) {
            LOG.warn("TimeoutPolicy {} returned connect {}, idle {}, close {}, max lifetime {}, ping {}; using connect"
                    + " {}, idle {}, close {}, max lifetime {}, {} (expected: connect and close positive, idle and"
                    + " max lifetime 0 or more, ping 0 or at least {} and shorter than the idle timeout). Logged once"
                    + " per policy class.", policy.getClass().getName(), connect, idle, close, lifetime, ping,
                    copy.connectTimeout, copy.idleTimeout, copy.closeTimeout, copy.maxLifetime,
                    copy.pings() ? "ping " + copy.pingInterval : "no pings", MIN_PING_INTERVAL);
        }
        return copy;
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

    /**
     * How long a frame the relay hands to a leg may wait to be written before the leg's peer counts as reading
     * nothing, even while it keeps sending: two ping intervals when the proxy pings (as long as an unwritten ping
     * takes to find it), the idle timeout otherwise; {@link Duration#ZERO} for no limit.
     */
    Duration writeTimeout() {
        return pings() ? pingInterval.multipliedBy(2) : idleTimeout;
    }

    /** {@code duration} in nanoseconds, {@link Long#MAX_VALUE} for one too long to say so (about 292 years). */
    static long nanos(Duration duration) {
        return duration.compareTo(LONGEST_NANOS) >= 0 ? Long.MAX_VALUE : duration.toNanos();
    }

    private static Duration positiveOr(Duration value, Duration fallback) {
        return value == null || value.isNegative() || value.isZero() ? fallback : value;
    }

    private static Duration notNegativeOr(Duration value, Duration fallback) {
        return value == null || value.isNegative() ? fallback : value;
    }
}
