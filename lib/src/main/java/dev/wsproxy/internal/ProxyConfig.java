package dev.wsproxy.internal;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

import org.eclipse.jetty.server.Handler;
import org.jspecify.annotations.Nullable;

import dev.wsproxy.BackendTls;
import dev.wsproxy.ProxyBuilder;
import dev.wsproxy.ServerTls;

/** Everything a {@link dev.wsproxy.WebSocketProxy} was built with; immutable. */
public final class ProxyConfig {

    private final String host;
    private final int port;
    private final boolean reusePort;
    private final List<Route> routes;
    private final @Nullable Handler nextHandler;
    private final Duration drainTimeout;
    private final Limits limits;
    private final Tls tls;

    /**
     * Proxy-wide limits and trust; 0, {@link Duration#ZERO} and {@link Integer#MAX_VALUE} mean none.
     * {@code perIpIpv6Prefix} is the IPv6 block (1 to 128 bits) the per-address limits count a client by.
     */
    public record Limits(List<String> trustedProxies, int maxConnectionsPerIp, int maxConnections,
            int handshakeRatePerIp, int perIpIpv6Prefix, Duration handshakeTimeout, int maxPendingHandshakes) {
        public static final Limits NONE = new Limits(List.of(), Integer.MAX_VALUE, Integer.MAX_VALUE, 0,
                ProxyBuilder.DEFAULT_PER_IP_IPV6_PREFIX, Duration.ZERO, Integer.MAX_VALUE);

        public Limits {
            trustedProxies = List.copyOf(trustedProxies);
        }
    }

    /** TLS of the client leg (standalone server only; {@code null} for plain {@code ws://}) and of backends. */
    public record Tls(@Nullable ServerTls server, BackendTls backend) {
        public static final Tls NONE = new Tls(null, BackendTls.systemTrust());
    }

    public ProxyConfig(String host, int port, boolean reusePort, List<Route> routes, @Nullable Handler nextHandler,
            Duration drainTimeout, Limits limits, Tls tls) {
        this.host = host;
        this.port = port;
        this.reusePort = reusePort;
        List<Route> sorted = new ArrayList<>(routes);
        // Longest prefix first: the first match is the longest.
        sorted.sort(Comparator.comparingInt((Route r) -> r.prefix().length()).reversed());
        this.routes = List.copyOf(sorted);
        this.nextHandler = nextHandler;
        this.drainTimeout = drainTimeout;
        this.limits = limits;
        this.tls = tls;
    }

    public Tls tls() {
        return tls;
    }

    public Limits limits() {
        return limits;
    }

    public String host() {
        return host;
    }

    public int port() {
        return port;
    }

    /** Whether the standalone server binds with {@code SO_REUSEPORT} and closes its listener when its stop begins. */
    public boolean reusePort() {
        return reusePort;
    }

    public List<Route> routes() {
        return routes;
    }

    public @Nullable Handler nextHandler() {
        return nextHandler;
    }

    public Duration drainTimeout() {
        return drainTimeout;
    }

    public List<String> routePrefixes() {
        return routes.stream().map(Route::prefix).toList();
    }

    /**
     * The standalone connector's idle timeout: above every route's handshake budget, and at least 30 s. Read when the
     * proxy starts, and fixed from then on.
     */
    public Duration connectorIdleTimeout() {
        Duration max = Duration.ofSeconds(30);
        for (Route route : routes) {
            // A user's policy checked and capped at Durations.LONGEST, as for a session (Timeouts.copyAtStart).
            Duration connect = Timeouts.copyAtStart(route.timeouts(), "the connector's idle timeout").connectTimeout();
            Duration budget = route.failover().maxTime().compareTo(connect) > 0 ? route.failover().maxTime() : connect;
            if (route.authenticator() != null) {
                // The authenticator may take up to a connect timeout before the backend handshake starts.
                budget = budget.plus(connect);
            }
            Duration wanted = budget.plusSeconds(5);
            if (wanted.compareTo(max) > 0) {
                max = wanted;
            }
        }
        return max;
    }

    public @Nullable Route route(String prefix) {
        for (Route route : routes) {
            if (route.prefix().equals(prefix)) {
                return route;
            }
        }
        return null;
    }

    @Nullable Route match(String path) {
        for (Route route : routes) {
            if (route.matches(path)) {
                return route;
            }
        }
        return null;
    }
}
