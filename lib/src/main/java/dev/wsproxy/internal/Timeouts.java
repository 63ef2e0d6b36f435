package dev.wsproxy.internal;

import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.random.RandomGenerator;

import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.TimeoutPolicy;

/** The built-in {@link TimeoutPolicy}: five fixed durations. Also the per-session snapshot of any policy. */
public record Timeouts(Duration connectTimeout, Duration idleTimeout, Duration closeTimeout, Duration maxLifetime,
        Duration pingInterval) implements TimeoutPolicy {

    public static final Timeouts DEFAULTS = new Timeouts(
            DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_CLOSE_TIMEOUT, Duration.ZERO, Duration.ZERO);

    /** How much shorter than the policy's a session's maximum lifetime may be ({@link #sessionLifetimeMillis}). */
    static final int SPREAD_PERCENT = 15;

    private static final Logger LOG = LoggerFactory.getLogger(Timeouts.class);
    /**
     * The classes of the user policies a value out of range was logged for: once each, not once per session. The
     * other warning has a set of its own ({@link #WARNED_THREW}): with one set for both, a policy that once returned
     * a value out of range (a {@code null} before its live configuration loaded) never had its later exceptions,
     * and their stack traces, logged, nor the other way round.
     */
    private static final Set<Class<?>> WARNED_OUT_OF_RANGE = ConcurrentHashMap.newKeySet();
    /** The classes of the user policies an exception was logged for: once each, not once per session. */
    private static final Set<Class<?>> WARNED_THREW = ConcurrentHashMap.newKeySet();

    /**
     * Caps each duration at {@link Durations#LONGEST} (longer ones mean "forever" and would overflow) and rounds a
     * positive one shorter than a millisecond up to one (Jetty would read its 0 ms as no timeout at all).
     */
    public Timeouts {
        connectTimeout = Durations.stored(connectTimeout);
        idleTimeout = Durations.stored(idleTimeout);
        closeTimeout = Durations.stored(closeTimeout);
        maxLifetime = Durations.stored(maxLifetime);
        pingInterval = Durations.stored(pingInterval);
    }

    /**
     * Reads a policy once, for one session (or one plain HTTP request), and checks what a user implementation
     * returned; a value out of range is replaced by the default so that one bad answer cannot wedge a session, and a
     * ping interval the proxy cannot use means no pings; a policy that throws means the defaults. Each of the two is
     * logged at WARN once per policy class, whatever the other did; a value capped at {@link Durations#LONGEST} is
     * not.
     */
    static Timeouts copyOf(TimeoutPolicy policy) {
        return read(policy, null);
    }

    /**
     * Reads a policy when the proxy starts, for {@code what} (the bound of the backend clients' connect timeout, the
     * standalone connector's idle timeout), checked as {@link #copyOf} checks it. A policy that throws is logged at
     * WARN each time (a start is rare); a value out of range is left for the sessions to report. Neither takes the
     * once-per-class WARN of the sessions: a policy that failed at start (its live configuration not loaded yet)
     * had every later failure of its sessions go unlogged.
     */
    static Timeouts copyAtStart(TimeoutPolicy policy, String what) {
        return read(policy, what);
    }

    private static Timeouts read(TimeoutPolicy policy, @Nullable String atStart) {
        if (policy instanceof Timeouts timeouts) {
            return timeouts;
        }
        Duration connect;
        Duration idle;
        Duration close;
        Duration lifetime;
        Duration ping;
        Object outer = UserCode.enter(policy);
        try {
            connect = policy.connectTimeout();
            idle = policy.idleTimeout();
            close = policy.closeTimeout();
            lifetime = policy.maxLifetime();
            ping = policy.pingInterval();
        } catch (Throwable e) {
            // A policy reading live configuration may fail: the session gets the defaults rather than an error that
            // would leave its connection slot taken.
            if (atStart != null) {
                LOG.warn("TimeoutPolicy {} failed when the proxy started; using the default connect timeout {} for {}",
                        policy.getClass().getName(), DEFAULT_CONNECT_TIMEOUT, atStart, e);
            } else if (WARNED_THREW.add(policy.getClass())) {
                LOG.warn("TimeoutPolicy {} failed; using the defaults. Logged once per policy class.",
                        policy.getClass().getName(), e);
            }
            return DEFAULTS;
        } finally {
            UserCode.exit(outer);
        }
        Duration connectUsed = positiveOr(connect, DEFAULT_CONNECT_TIMEOUT);
        Duration idleUsed = notNegativeOr(idle, DEFAULT_IDLE_TIMEOUT);
        Duration closeUsed = positiveOr(close, DEFAULT_CLOSE_TIMEOUT);
        Duration lifetimeUsed = notNegativeOr(lifetime, Duration.ZERO);
        Duration pingUsed = notNegativeOr(ping, Duration.ZERO);
        // The checks above return the value itself when it is in range (a longer one than Durations.LONGEST is
        // capped, not replaced: it means "forever").
        boolean replaced = connectUsed != connect || idleUsed != idle || closeUsed != close
                || lifetimeUsed != lifetime || pingUsed != ping;
        Timeouts copy = new Timeouts(connectUsed, idleUsed, closeUsed, lifetimeUsed, pingUsed);
        // Judged before the cap: an interval of 200 years under an idle timeout of 300 is usable, if pointless.
        boolean unusablePing = !pingUsed.isZero() && !usablePing(pingUsed, idleUsed);
        if ((replaced || unusablePing) && atStart == null && WARNED_OUT_OF_RANGE.add(policy.getClass())) {
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
        return usablePing(pingInterval, idleTimeout);
    }

    private static boolean usablePing(Duration ping, Duration idle) {
        return ping.compareTo(MIN_PING_INTERVAL) >= 0 && (idle.isZero() || ping.compareTo(idle) < 0);
    }

    /**
     * A session's maximum lifetime, in milliseconds: the policy's shortened by a uniform draw of up to
     * {@link #SPREAD_PERCENT} percent, so that sessions opened together (a reconnect storm) are not closed together,
     * and do not all reconnect at once again, at every lifetime; at least 1; 0 for no limit. The ping interval is not
     * drawn: pings that come together cost less than the same pings apart (see "Maximum lifetime drawn per session"
     * in {@code docs/design.md}).
     */
    long sessionLifetimeMillis(RandomGenerator random) {
        if (maxLifetime.isZero()) {
            return 0;
        }
        long millis = maxLifetime.toMillis(); // at most Durations.LONGEST: no overflow below
        return Math.max(1, millis - random.nextLong(millis * SPREAD_PERCENT / 100 + 1));
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
     * takes to find it), the idle timeout otherwise; 0 for no limit. In nanoseconds, computed for each session, so
     * without {@code Duration.multipliedBy}, which goes through {@code BigDecimal} (half a kilobyte allocated per
     * session).
     */
    long writeTimeoutNanos() {
        return pings() ? 2 * pingInterval.toNanos() : idleTimeout.toNanos();
    }

    private static Duration positiveOr(Duration value, Duration fallback) {
        return value == null || value.isNegative() || value.isZero() ? fallback : value;
    }

    private static Duration notNegativeOr(Duration value, Duration fallback) {
        return value == null || value.isNegative() ? fallback : value;
    }
}
