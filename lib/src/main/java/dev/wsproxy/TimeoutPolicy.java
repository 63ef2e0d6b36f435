package dev.wsproxy;

import static java.util.Objects.requireNonNull;

import java.time.Duration;

import dev.wsproxy.internal.Timeouts;

/**
 * The timeouts of a proxied session: backend connect, idle, close handshake, maximum lifetime and the keep-alive
 * pings that tell a live peer from a dead one.
 *
 * <p>Built-ins:
 * <ul>
 *   <li>{@link #ofDefaults()}: connect 10 s, idle 1 h (as the nginx WebSocket guide recommends for
 *       {@code proxy_read_timeout}), close 10 s, no maximum lifetime.</li>
 *   <li>{@link #idle(Duration)}: the defaults with another idle timeout.</li>
 *   <li>{@link #custom()}: a builder for all five.</li>
 * </ul>
 *
 * <p>You can also implement your own, for instance to read the values from live configuration (when the proxy reads
 * a policy is said below). Implementations must be thread-safe and must not block, and may not stop the proxy, which
 * would wait for the Jetty thread that reads them: {@link WebSocketProxy#stop(Duration)} throws
 * {@code IllegalStateException} there, a failure of the policy's like any other (the defaults). A duration longer than 100 years
 * counts as 100 years, so {@code ChronoUnit.FOREVER.getDuration()} means "never" wherever {@link Duration#ZERO} does
 * not; the built-in policies return the capped value ({@code idle(FOREVER).idleTimeout()} is 100 years).
 *
 * <p>What each timeout does:
 * <ul>
 *   <li><b>connect</b>: from the start of the backend connection to its {@code 101} answer; the client gets
 *       {@code 504 Gateway Timeout} when it passes (nginx {@code proxy_connect_timeout}).</li>
 *   <li><b>idle</b>: per leg; a leg with no bytes read or written for this long closes both legs with {@code 1001}
 *       (nginx {@code proxy_read_timeout}), and so does a relayed frame its peer has not taken for this long, even
 *       while that peer keeps sending (nginx {@code proxy_send_timeout}): the peer's connection is dropped, the other
 *       peer gets {@code 1001 idle timeout}. Relayed pings and pongs count, the proxy's own do not.
 *       {@link Duration#ZERO} disables both (with pings on, the ping's bound on reading stays).</li>
 *   <li><b>close</b>: how long a leg may take to answer a close frame before the proxy drops its connection.</li>
 *   <li><b>max lifetime</b>: a session older than this is closed with {@code 1001} on both legs; each session's
 *       limit is this one shortened by up to 15 %, drawn when it opens, so that sessions opened together (clients
 *       reconnecting after a restart) are not closed together and do not all reconnect at once again, at every
 *       lifetime. No session's close starts later than this after it opened. {@link Duration#ZERO} (the default)
 *       means no limit.</li>
 *   <li><b>ping</b>: when a leg has read and written nothing for this long, the proxy sends its peer a ping of its
 *       own; a peer that then sends nothing at all for another interval, not even the pong, is taken for dead: its
 *       connection is dropped and the other peer gets {@code 1014} (a dead backend) or {@code 1001} (a dead client).
 *       That finds a frozen or vanished peer (a host that lost power, a half-open TCP connection) within two
 *       intervals, where the idle timeout alone would wait an hour, and the pings keep quiet sessions alive through
 *       middleboxes that drop idle connections (cloud load balancers, NAT). The pongs that answer the proxy's pings
 *       are not relayed. A peer that reads nothing for two intervals, so that a ping or a relayed frame cannot be
 *       written, counts as dead too, even while it keeps sending (as nginx's {@code proxy_send_timeout}; with pings
 *       this bound replaces the idle timeout's). A peer must take a frame (at most 64 KiB) within two intervals, and
 *       before it about a third of the socket's send buffer (which Linux grows up to 4 MiB by default), which the
 *       kernel drains before it lets a write resume: about 25 KiB/s at 30 s in the worst case; a client on an
 *       HTTP/2 stream (RFC 8441) must also open its flow-control window by that frame. A peer the proxy is
 *       not reading from because the other peer is slow is never judged by its silence (only by its reading). The
 *       idle timeout is then checked at each interval, so it fires up to one interval late.
 *       {@link Duration#ZERO} (the default) sends no pings. 20 to 60 seconds suits most deployments; the interval
 *       must be at least {@link #MIN_PING_INTERVAL} and shorter than the idle timeout.</li>
 * </ul>
 *
 * <p>When the proxy reads the policy:
 * <ul>
 *   <li>Once per upgrade request on the route, when it arrives (before the {@link Authenticator}, whose deadline is
 *       the connect timeout): the session keeps these values for its whole life.</li>
 *   <li>Once per plain HTTP request the route forwards ({@link PlainHttp#PROXY_TO_BACKEND}): the authenticator's
 *       deadline, and the idle timeout that bounds the backend's response.</li>
 *   <li>When the proxy starts ({@link WebSocketProxy#start()}, or the start of the server a mounted
 *       {@link WebSocketProxy#handler()} is in), each route's {@link #connectTimeout()}, for two values fixed until
 *       the next start: the TCP connect timeout of every backend connection, the longest connect timeout of the
 *       routes, and at least {@link #DEFAULT_CONNECT_TIMEOUT} for WebSocket sessions and health checks (a session
 *       whose policy later returns a longer one has its TCP connect cut there all the same; plain HTTP gets the
 *       routes' longest with no floor); and the idle timeout of the standalone server's connector, above
 *       every route's handshake budget (connect timeout, failover, authenticator) and at least 30 seconds, under
 *       which a pending handshake must end (a mounted proxy's connectors are yours).</li>
 * </ul>
 * A value out of range is replaced by its default, and a policy that throws gives that session or request the
 * defaults; either is logged at WARN, once per policy class. A policy that throws when the proxy starts is logged at
 * WARN each time and does not count toward that once, so the failures of its sessions are still logged.
 */
public interface TimeoutPolicy {

    /** The default backend connect and handshake timeout: 10 seconds. */
    Duration DEFAULT_CONNECT_TIMEOUT = Duration.ofSeconds(10);

    /** The default idle timeout per leg: 1 hour. */
    Duration DEFAULT_IDLE_TIMEOUT = Duration.ofHours(1);

    /** The default close handshake timeout: 10 seconds. */
    Duration DEFAULT_CLOSE_TIMEOUT = Duration.ofSeconds(10);

    /** The shortest ping interval: 100 milliseconds. */
    Duration MIN_PING_INTERVAL = Duration.ofMillis(100);

    /**
     * Returns the time allowed from the start of the backend connection to its {@code 101}. Also read when the proxy
     * starts, to bound the TCP connect of every backend connection until the next start (see the class comment).
     *
     * @return a positive duration
     */
    Duration connectTimeout();

    /**
     * Returns the idle timeout of each leg. Plain HTTP proxied on the route may wait this long for the backend's
     * response, and for each of its bytes (a long poll, server-sent events), before the client gets {@code 504}, or,
     * once the response has begun, has its connection closed.
     *
     * @return a positive duration, or {@link Duration#ZERO} for none
     */
    Duration idleTimeout();

    /**
     * Returns how long a leg may take to answer a close frame. A peer that takes longer has its connection dropped;
     * when the other peer started the close, it gets the proxy's answer instead ({@code 1014} to a client, {@code 1001}
     * to a backend, as for a lost peer) and one more close timeout to take it.
     *
     * @return a positive duration; {@link #DEFAULT_CLOSE_TIMEOUT} unless overridden
     */
    default Duration closeTimeout() {
        return DEFAULT_CLOSE_TIMEOUT;
    }

    /**
     * Returns the maximum lifetime of a session (each session's limit is this one shortened by up to 15 %); see the
     * class comment.
     *
     * @return a positive duration, or {@link Duration#ZERO} (the default) for no limit
     */
    default Duration maxLifetime() {
        return Duration.ZERO;
    }

    /**
     * Returns how long a leg may be silent before the proxy pings its peer; see the class comment.
     *
     * @return at least {@link #MIN_PING_INTERVAL} and shorter than {@link #idleTimeout()}, or {@link Duration#ZERO}
     *     (the default) for no pings; any other value also means no pings (logged at {@code WARN} once per policy
     *     class, as is a value of the other methods out of range, which the proxy replaces by its default)
     */
    default Duration pingInterval() {
        return Duration.ZERO;
    }

    /**
     * Returns the default policy: connect 10 s, idle 1 h, close 10 s, no maximum lifetime, no pings.
     *
     * @return the default policy
     */
    static TimeoutPolicy ofDefaults() {
        return Timeouts.DEFAULTS;
    }

    /**
     * Returns the default policy with another idle timeout.
     *
     * @param idleTimeout the idle timeout per leg, or {@link Duration#ZERO} for none
     * @return the policy
     * @throws IllegalArgumentException if the duration is negative
     */
    static TimeoutPolicy idle(Duration idleTimeout) {
        return custom().idle(idleTimeout).build();
    }

    /**
     * Returns a builder that starts from the defaults.
     *
     * @return a new builder
     */
    static Builder custom() {
        return new Builder();
    }

    /** Builds a {@link TimeoutPolicy}; every setter validates its value at once. */
    final class Builder {
        private Duration connect = DEFAULT_CONNECT_TIMEOUT;
        private Duration idle = DEFAULT_IDLE_TIMEOUT;
        private Duration close = DEFAULT_CLOSE_TIMEOUT;
        private Duration maxLifetime = Duration.ZERO;
        private Duration ping = Duration.ZERO;

        private Builder() {
        }

        /**
         * Sets the backend connect and handshake timeout.
         *
         * @param timeout a positive duration
         * @return this builder
         */
        public Builder connect(Duration timeout) {
            this.connect = positive("connect", timeout);
            return this;
        }

        /**
         * Sets the idle timeout per leg.
         *
         * @param timeout a positive duration, or {@link Duration#ZERO} for none
         * @return this builder
         */
        public Builder idle(Duration timeout) {
            this.idle = notNegative("idle", timeout);
            return this;
        }

        /**
         * Sets the close handshake timeout.
         *
         * @param timeout a positive duration
         * @return this builder
         */
        public Builder close(Duration timeout) {
            this.close = positive("close", timeout);
            return this;
        }

        /**
         * Sets the maximum session lifetime (each session's is this one shortened by up to 15 %; see the class
         * comment).
         *
         * @param lifetime a positive duration, or {@link Duration#ZERO} for no limit
         * @return this builder
         */
        public Builder maxLifetime(Duration lifetime) {
            this.maxLifetime = notNegative("maxLifetime", lifetime);
            return this;
        }

        /**
         * Sets the interval of the proxy's keep-alive pings (see the class comment).
         *
         * @param interval at least {@link #MIN_PING_INTERVAL} and shorter than the idle timeout, or
         *     {@link Duration#ZERO} for no pings
         * @return this builder
         * @throws IllegalArgumentException if the interval is negative or shorter than {@link #MIN_PING_INTERVAL}
         */
        public Builder ping(Duration interval) {
            notNegative("ping", interval);
            if (!interval.isZero() && interval.compareTo(MIN_PING_INTERVAL) < 0) {
                throw new IllegalArgumentException(
                        "ping: " + interval + " (expected: at least " + MIN_PING_INTERVAL + ", or 0)");
            }
            this.ping = interval;
            return this;
        }

        /**
         * Returns the policy.
         *
         * @return an immutable policy
         * @throws IllegalArgumentException if the ping interval is not shorter than a non-zero idle timeout
         */
        public TimeoutPolicy build() {
            if (!ping.isZero() && !idle.isZero() && ping.compareTo(idle) >= 0) {
                throw new IllegalArgumentException(
                        "ping: " + ping + " (expected: shorter than the idle timeout " + idle + ", or 0)");
            }
            return new Timeouts(connect, idle, close, maxLifetime, ping);
        }

        private static Duration positive(String name, Duration value) {
            requireNonNull(value, name);
            if (value.isNegative() || value.isZero()) {
                throw new IllegalArgumentException(name + ": " + value + " (expected: > 0)");
            }
            return value;
        }

        private static Duration notNegative(String name, Duration value) {
            requireNonNull(value, name);
            if (value.isNegative()) {
                throw new IllegalArgumentException(name + ": " + value + " (expected: >= 0)");
            }
            return value;
        }
    }
}
