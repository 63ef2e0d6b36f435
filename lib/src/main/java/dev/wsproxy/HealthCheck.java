package dev.wsproxy;

import static java.util.Objects.requireNonNull;

import java.net.URI;
import java.net.URISyntaxException;
import java.time.Duration;
import java.util.Locale;

import dev.wsproxy.internal.Durations;

/**
 * An active health check: every {@link #interval()}, the proxy probes each backend of a route and takes it out of
 * selection after {@link #unhealthyThreshold()} failed probes in a row, back in after {@link #healthyThreshold()}
 * good ones. Transitions are reported to {@link ProxyListener#onBackendStateChanged} and show in
 * {@link WebSocketProxy#backendStatus(String)}.
 *
 * <pre>{@code
 * ProxyBuilder.create()
 *         .route("/ws/", a, b, c)
 *         .healthCheck(HealthCheck.webSocket("/health").interval(Duration.ofSeconds(5)));
 * }</pre>
 *
 * <p>Two kinds: {@link #webSocket(String)} opens a WebSocket handshake on the path and closes it with {@code 1000}
 * as soon as it is upgraded (the check a WebSocket backend cannot fake); {@link #http(String)} sends a {@code GET}
 * and expects a {@code 2xx}. Each probe opens a connection of its own, as a handshake does (an HTTP probe asks for
 * {@code Connection: close}), so a backend that stops taking connections fails its probes. A probe that does not
 * finish within {@link #timeout()} fails. A WebSocket probe counts as good at its {@code 101}; the backend then has
 * {@link #timeout()} to answer the close, or the probe's connection is dropped. Probes are asynchronous and share the
 * proxy's backend client and threads. A backend has one probe at a time, its connection included: with a timeout
 * longer than the interval, a backend whose probe is still pending skips the next rounds until it ends. Passive health
 * ({@link ProxyBuilder#passiveHealth}) still applies on top: a backend is selectable only when both say it is up.
 *
 * <p>Immutable: each setter returns a copy.
 */
public final class HealthCheck {

    /** The probe interval unless set: 10 seconds. */
    public static final Duration DEFAULT_INTERVAL = Duration.ofSeconds(10);
    /** The probe timeout unless set: 5 seconds. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(5);
    /** Failed probes in a row that take a backend down unless set: {@value}. */
    public static final int DEFAULT_UNHEALTHY_THRESHOLD = 2;
    /** Good probes in a row that bring a backend back unless set: {@value}. */
    public static final int DEFAULT_HEALTHY_THRESHOLD = 2;

    /** What a probe does. */
    public enum Kind {
        /** A WebSocket handshake, closed with 1000 once upgraded. */
        WEBSOCKET,
        /** An HTTP {@code GET} that must answer {@code 2xx}. */
        HTTP
    }

    private final Kind kind;
    private final String path;
    private final Duration interval;
    private final Duration timeout;
    private final int unhealthyThreshold;
    private final int healthyThreshold;

    private HealthCheck(Kind kind, String path, Duration interval, Duration timeout, int unhealthyThreshold,
            int healthyThreshold) {
        this.kind = kind;
        this.path = path;
        this.interval = interval;
        this.timeout = timeout;
        this.unhealthyThreshold = unhealthyThreshold;
        this.healthyThreshold = healthyThreshold;
    }

    /**
     * Returns a check that opens a WebSocket handshake on {@code path} of each backend.
     *
     * @param path a path starting with {@code /}, sent as is (a backend's own path prefix is not added), so already
     *        in URI syntax: characters a URI does not allow there ({@code |}, <code>{</code>, {@code ^}, {@code "}, a
     *        {@code %} that starts no escape...) percent-encoded, and no fragment ({@code #}, never sent); it may
     *        carry a query ({@code /health?deep=1})
     * @return the check, with the default interval, timeout and thresholds
     * @throws IllegalArgumentException if {@code path} is not such a path; the message names the character
     */
    public static HealthCheck webSocket(String path) {
        return new HealthCheck(Kind.WEBSOCKET, validPath(path), DEFAULT_INTERVAL, DEFAULT_TIMEOUT,
                DEFAULT_UNHEALTHY_THRESHOLD, DEFAULT_HEALTHY_THRESHOLD);
    }

    /**
     * Returns a check that sends {@code GET path} to each backend over HTTP (HTTPS for {@code wss://} backends), with
     * {@code Connection: close}: each probe on a new connection.
     *
     * @param path a path starting with {@code /}, sent as is, so in URI syntax (see {@link #webSocket(String)})
     * @return the check, with the default interval, timeout and thresholds
     * @throws IllegalArgumentException if {@code path} is not such a path; the message names the character
     */
    public static HealthCheck http(String path) {
        return new HealthCheck(Kind.HTTP, validPath(path), DEFAULT_INTERVAL, DEFAULT_TIMEOUT,
                DEFAULT_UNHEALTHY_THRESHOLD, DEFAULT_HEALTHY_THRESHOLD);
    }

    /**
     * Checks that {@code path} can be sent as is: the probe's URI is the backend's scheme and authority followed by
     * it, so a path {@link URI} refuses would fail every probe (every backend down). It is refused here rather than
     * encoded: whether a {@code %} starts an escape or means itself, only its author knows.
     */
    private static String validPath(String path) {
        requireNonNull(path, "path");
        if (!path.startsWith("/") || path.chars().anyMatch(c -> c <= ' ' || c >= 0x7f)) {
            throw new IllegalArgumentException("path: '" + path + "' (expected: a path starting with /)");
        }
        String prefix = "http://h";
        URI uri;
        try {
            uri = new URI(prefix + path);
        } catch (URISyntaxException e) {
            int index = e.getIndex() - prefix.length();
            char c = index >= 0 && index < path.length() ? path.charAt(index) : '?';
            String why = c == '%'
                    ? "'%' at index " + index + " starts no escape of two hex digits (a '%' itself is %25)"
                    : "'" + c + "' at index " + index + " must be percent-encoded, as %"
                            + String.format(Locale.ROOT, "%02X", (int) c);
            throw new IllegalArgumentException("path: '" + path + "' (expected: a path in URI syntax, sent as is: "
                    + why + ")");
        }
        if (uri.getRawFragment() != null) {
            throw new IllegalArgumentException("path: '" + path + "' (expected: a path in URI syntax, sent as is: '#' "
                    + "at index " + path.indexOf('#') + " starts a fragment, which is never sent; as part of the path "
                    + "it is %23)");
        }
        return path;
    }

    /**
     * Returns a copy probing every {@code interval}.
     *
     * @param interval a positive duration (less than a millisecond counts as one)
     * @return the changed check
     */
    public HealthCheck interval(Duration interval) {
        return new HealthCheck(kind, path, positive("interval", interval), timeout, unhealthyThreshold,
                healthyThreshold);
    }

    /**
     * Returns a copy whose probes fail when they take longer than {@code timeout}.
     *
     * @param timeout a positive duration (less than a millisecond counts as one)
     * @return the changed check
     */
    public HealthCheck timeout(Duration timeout) {
        return new HealthCheck(kind, path, interval, positive("timeout", timeout), unhealthyThreshold,
                healthyThreshold);
    }

    /**
     * Returns a copy with other thresholds.
     *
     * @param unhealthy failed probes in a row that take a backend down, at least 1
     * @param healthy good probes in a row that bring it back, at least 1
     * @return the changed check
     */
    public HealthCheck thresholds(int unhealthy, int healthy) {
        if (unhealthy < 1 || healthy < 1) {
            throw new IllegalArgumentException(
                    "thresholds: " + unhealthy + ", " + healthy + " (expected: both >= 1)");
        }
        return new HealthCheck(kind, path, interval, timeout, unhealthy, healthy);
    }

    private static Duration positive(String name, Duration value) {
        requireNonNull(value, name);
        if (value.isNegative() || value.isZero()) {
            throw new IllegalArgumentException(name + ": " + value + " (expected: > 0)");
        }
        return Durations.stored(value);
    }

    /**
     * Returns what a probe does.
     *
     * @return the kind
     */
    public Kind kind() {
        return kind;
    }

    /**
     * Returns the probed path.
     *
     * @return the path
     */
    public String path() {
        return path;
    }

    /**
     * Returns the probe interval.
     *
     * @return the interval
     */
    public Duration interval() {
        return interval;
    }

    /**
     * Returns the probe timeout.
     *
     * @return the timeout
     */
    public Duration timeout() {
        return timeout;
    }

    /**
     * Returns how many failed probes in a row take a backend down.
     *
     * @return the unhealthy threshold
     */
    public int unhealthyThreshold() {
        return unhealthyThreshold;
    }

    /**
     * Returns how many good probes in a row bring a backend back.
     *
     * @return the healthy threshold
     */
    public int healthyThreshold() {
        return healthyThreshold;
    }

    @Override
    public String toString() {
        // Locale.ROOT: the same text whatever the default locale (a Turkish one lower-cases I to a dotless ı).
        return kind.name().toLowerCase(Locale.ROOT) + " " + path + " every " + interval + " (timeout " + timeout
                + ", down after " + unhealthyThreshold + ", up after " + healthyThreshold + ")";
    }
}
