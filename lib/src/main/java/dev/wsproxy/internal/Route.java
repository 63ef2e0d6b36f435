package dev.wsproxy.internal;

import java.time.Duration;

import dev.wsproxy.BackendSelector;
import dev.wsproxy.OriginValidator;
import dev.wsproxy.PlainHttp;
import dev.wsproxy.ProxyListener;
import dev.wsproxy.TimeoutPolicy;

/** A route with every setting resolved. Immutable but for the live backend list it holds. */
public record Route(
        String prefix,
        RouteBackends backends,
        BackendSelector selector,
        TimeoutPolicy timeouts,
        OriginValidator originValidator,
        long maxMessageSize,
        PlainHttp plainHttp,
        boolean preserveHost,
        PassiveHealth passiveHealth,
        Failover failover,
        ProxyListener listener) {

    /** nginx {@code max_fails} / {@code fail_timeout}: {@code maxFails} 0 turns passive health off. */
    public record PassiveHealth(int maxFails, Duration failTimeout) {
        public static final PassiveHealth DEFAULT = new PassiveHealth(1, Duration.ofSeconds(10));
    }

    /** nginx {@code proxy_next_upstream_tries} / {@code proxy_next_upstream_timeout}. */
    public record Failover(int maxAttempts, Duration maxTime) {
        public static final Failover DEFAULT = new Failover(3, Duration.ofSeconds(30));
    }

    /** Tells whether this route serves {@code path} (a path in context). */
    boolean matches(String path) {
        return path.startsWith(prefix);
    }
}
