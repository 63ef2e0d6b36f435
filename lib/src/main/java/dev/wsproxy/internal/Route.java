package dev.wsproxy.internal;

import java.time.Duration;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Authenticator;
import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.HealthCheck;
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
        int maxFragmentsPerMessage,
        int messageRateLimit,
        PlainHttp plainHttp,
        boolean preserveHost,
        boolean compressionPassThrough,
        PassiveHealth passiveHealth,
        Failover failover,
        int maxPendingBackendHandshakes,
        @Nullable HealthCheck healthCheck,
        @Nullable Dns dns,
        ProxyListener listener,
        @Nullable Authenticator authenticator) {

    /** Backends resolved from the host of {@code template} every {@code refresh}. */
    public record Dns(Backend template, Duration refresh) {
    }

    /** nginx {@code max_fails} / {@code fail_timeout}: {@code maxFails} 0 turns passive health off. */
    public record PassiveHealth(int maxFails, Duration failTimeout) {
        public static final PassiveHealth DEFAULT = new PassiveHealth(1, Duration.ofSeconds(10));

        public PassiveHealth {
            failTimeout = Durations.stored(failTimeout);
        }
    }

    /** nginx {@code proxy_next_upstream_tries} / {@code proxy_next_upstream_timeout}. */
    public record Failover(int maxAttempts, Duration maxTime) {
        public static final Failover DEFAULT = new Failover(3, Duration.ofSeconds(30));

        public Failover {
            maxTime = Durations.stored(maxTime);
        }
    }

    /** Tells whether this route serves {@code path} (a path in context). */
    boolean matches(String path) {
        return path.startsWith(prefix);
    }
}
