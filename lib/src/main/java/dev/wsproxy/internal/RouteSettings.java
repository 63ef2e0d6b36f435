package dev.wsproxy.internal;

import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Authenticator;
import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.HealthCheck;
import dev.wsproxy.OriginValidator;
import dev.wsproxy.PlainHttp;
import dev.wsproxy.ProxyBuilder;
import dev.wsproxy.ProxyListener;
import dev.wsproxy.TimeoutPolicy;

/**
 * The settings of one route, or the proxy-wide defaults, as the builders collect them. Unset values are {@code null}
 * and are taken from the defaults by {@link #resolve(RouteSettings)}.
 */
public final class RouteSettings {

    /** The highest message rate that can be set: above it the limit would not limit anything. */
    public static final int MAX_MESSAGE_RATE = 1_000_000;

    private final String prefix;
    private @Nullable List<Backend> backends;
    private @Nullable BackendSelector selector;
    private @Nullable TimeoutPolicy timeouts;
    private @Nullable OriginValidator originValidator;
    private @Nullable Long maxMessageSize;
    private @Nullable Integer maxFragmentsPerMessage;
    private @Nullable Integer messageRateLimit;
    private @Nullable PlainHttp plainHttp;
    private @Nullable Boolean preserveHost;
    private @Nullable Boolean compressionPassThrough;
    private Route.@Nullable PassiveHealth passiveHealth;
    private Route.@Nullable Failover failover;
    private @Nullable Integer maxPendingBackendHandshakes;
    private @Nullable HealthCheck healthCheck;
    private @Nullable Backend dnsTemplate;
    private @Nullable Duration dnsRefresh;
    private final List<ProxyListener> listeners = new ArrayList<>();
    private @Nullable Authenticator authenticator;

    public RouteSettings(String prefix) {
        this.prefix = prefix;
    }

    /** The proxy-wide defaults, every value set. */
    public static RouteSettings proxyDefaults(long maxMessageSize) {
        RouteSettings defaults = new RouteSettings("");
        defaults.selector = Selectors.roundRobin();
        defaults.timeouts = Timeouts.DEFAULTS;
        defaults.originValidator = Origins.ANY;
        defaults.maxMessageSize = maxMessageSize;
        defaults.maxFragmentsPerMessage = ProxyBuilder.DEFAULT_MAX_FRAGMENTS_PER_MESSAGE;
        defaults.messageRateLimit = 0;
        defaults.plainHttp = PlainHttp.PROXY_TO_BACKEND;
        defaults.preserveHost = true;
        defaults.compressionPassThrough = false;
        defaults.passiveHealth = Route.PassiveHealth.DEFAULT;
        defaults.failover = Route.Failover.DEFAULT;
        defaults.maxPendingBackendHandshakes = ProxyBuilder.DEFAULT_MAX_PENDING_BACKEND_HANDSHAKES;
        return defaults;
    }

    public static void validatePrefix(String prefix) {
        if (!prefix.startsWith("/") || prefix.contains("?") || prefix.contains("#") || prefix.contains("%")
                || prefix.contains("//") || prefix.chars().anyMatch(c -> c <= ' ' || c >= 0x7f)) {
            throw new IllegalArgumentException(
                    "pathPrefix: '" + prefix + "' (expected: a path of visible ASCII starting with /, like /ws/)");
        }
        // Routes match the canonical path, from which Jetty removes dot segments and ;parameters: a prefix with
        // either would be accepted and never match.
        for (String segment : prefix.split("/", -1)) {
            if (segment.equals(".") || segment.equals("..") || segment.contains(";")) {
                throw new IllegalArgumentException("pathPrefix: '" + prefix + "' (expected: no . or .. segment and "
                        + "no ;parameter, which request paths are matched without)");
            }
        }
    }

    public RouteSettings copy() {
        RouteSettings copy = new RouteSettings(prefix);
        copy.overrideWith(this);
        return copy;
    }

    /**
     * Sets every value that {@code other} sets. The backends and the DNS name they come from go together, as
     * {@link #backends} and {@link #dns} set them: a route from DNS has an empty list until the first answer, and
     * copied without its name it would stay empty (every upgrade {@code 503}).
     */
    public void overrideWith(RouteSettings other) {
        if (other.backends != null) {
            backends = other.backends;
            dnsTemplate = other.dnsTemplate;
            dnsRefresh = other.dnsRefresh;
        }
        if (other.selector != null) {
            selector = other.selector;
        }
        if (other.timeouts != null) {
            timeouts = other.timeouts;
        }
        if (other.originValidator != null) {
            originValidator = other.originValidator;
        }
        if (other.maxMessageSize != null) {
            maxMessageSize = other.maxMessageSize;
        }
        if (other.maxFragmentsPerMessage != null) {
            maxFragmentsPerMessage = other.maxFragmentsPerMessage;
        }
        if (other.messageRateLimit != null) {
            messageRateLimit = other.messageRateLimit;
        }
        if (other.plainHttp != null) {
            plainHttp = other.plainHttp;
        }
        if (other.preserveHost != null) {
            preserveHost = other.preserveHost;
        }
        if (other.compressionPassThrough != null) {
            compressionPassThrough = other.compressionPassThrough;
        }
        if (other.passiveHealth != null) {
            passiveHealth = other.passiveHealth;
        }
        if (other.failover != null) {
            failover = other.failover;
        }
        if (other.maxPendingBackendHandshakes != null) {
            maxPendingBackendHandshakes = other.maxPendingBackendHandshakes;
        }
        if (other.healthCheck != null) {
            healthCheck = other.healthCheck;
        }
        listeners.addAll(other.listeners);
        if (other.authenticator != null) {
            authenticator = other.authenticator;
        }
    }

    /**
     * Returns a copy of a route's backends, checked: at least one, and each URI once. A route's backends are told
     * apart by URI (their states, failover's "already tried", {@link dev.wsproxy.WebSocketProxy#drain}), so two
     * entries with one URI would share a state: failover would stop at the second as already tried, even with another
     * backend up, and failures would count on the first only. DNS answers do not pass here ({@link DnsBackends}
     * replaces the list itself; the JDK's resolver gives each address once).
     */
    public static List<Backend> checkedBackends(List<Backend> backends) {
        if (backends.isEmpty()) {
            throw new IllegalArgumentException("backends: [] (expected: at least one backend)");
        }
        Set<URI> uris = new HashSet<>();
        for (Backend backend : backends) {
            // Backend.of normalises the URI: ws://h and ws://H:80 are one here.
            if (!uris.add(backend.uri())) {
                throw new IllegalArgumentException("backends: " + backends + " (expected: each URI once; "
                        + backend.uri() + " is given twice)");
            }
        }
        return List.copyOf(backends);
    }

    public void backends(List<Backend> backends) {
        this.backends = checkedBackends(backends);
        this.dnsTemplate = null;
        this.dnsRefresh = null;
    }

    public void selector(BackendSelector selector) {
        this.selector = selector;
    }

    public void timeouts(TimeoutPolicy timeouts) {
        this.timeouts = timeouts;
    }

    public void originValidator(OriginValidator originValidator) {
        this.originValidator = originValidator;
    }

    public void maxMessageSize(long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("maxMessageSize: " + bytes + " (expected: > 0)");
        }
        this.maxMessageSize = bytes;
    }

    public void maxFragmentsPerMessage(int fragments) {
        if (fragments <= 0) {
            throw new IllegalArgumentException("maxFragmentsPerMessage: " + fragments + " (expected: > 0)");
        }
        this.maxFragmentsPerMessage = fragments;
    }

    public void messageRateLimit(int messagesPerSecond) {
        if (messagesPerSecond < 0 || messagesPerSecond > MAX_MESSAGE_RATE) {
            throw new IllegalArgumentException("messageRateLimit: " + messagesPerSecond
                    + " (expected: 0 to " + MAX_MESSAGE_RATE + "; 0 disables)");
        }
        this.messageRateLimit = messagesPerSecond;
    }

    public void plainHttp(PlainHttp plainHttp) {
        this.plainHttp = plainHttp;
    }

    public void preserveHost(boolean preserveHost) {
        this.preserveHost = preserveHost;
    }

    public void compressionPassThrough(boolean passThrough) {
        this.compressionPassThrough = passThrough;
    }

    public void passiveHealth(int maxFails, Duration failTimeout) {
        if (maxFails < 0) {
            throw new IllegalArgumentException("maxFails: " + maxFails + " (expected: >= 0; 0 disables)");
        }
        if (failTimeout.isNegative() || failTimeout.isZero()) {
            throw new IllegalArgumentException("failTimeout: " + failTimeout + " (expected: > 0)");
        }
        this.passiveHealth = new Route.PassiveHealth(maxFails, failTimeout);
    }

    public void failover(int maxAttempts, Duration maxTime) {
        if (maxAttempts < 1) {
            throw new IllegalArgumentException("maxAttempts: " + maxAttempts + " (expected: >= 1)");
        }
        if (maxTime.isNegative() || maxTime.isZero()) {
            throw new IllegalArgumentException("maxTime: " + maxTime + " (expected: > 0)");
        }
        this.failover = new Route.Failover(maxAttempts, maxTime);
    }

    public void maxPendingBackendHandshakes(int perBackend) {
        if (perBackend <= 0) {
            throw new IllegalArgumentException("maxPendingBackendHandshakes: " + perBackend + " (expected: > 0)");
        }
        this.maxPendingBackendHandshakes = perBackend;
    }

    public void dns(Backend template, Duration refresh) {
        if (refresh.isNegative() || refresh.isZero()) {
            throw new IllegalArgumentException("refresh: " + refresh + " (expected: > 0)");
        }
        this.dnsTemplate = template;
        this.dnsRefresh = Durations.stored(refresh);
        this.backends = List.of();
    }

    public void healthCheck(HealthCheck healthCheck) {
        this.healthCheck = healthCheck;
    }

    public void authenticator(Authenticator authenticator) {
        this.authenticator = authenticator;
    }

    public void addListener(ProxyListener listener) {
        listeners.add(listener);
    }

    /** Returns the route with every unset value taken from {@code defaults}. */
    public Route resolve(RouteSettings defaults) {
        if (backends == null) {
            throw new IllegalStateException("route " + prefix + " has no backends (expected: backends(...))");
        }
        RouteSettings merged = new RouteSettings(prefix);
        merged.overrideWith(defaults);
        merged.overrideWith(this);
        List<ProxyListener> all = new ArrayList<>(defaults.listeners);
        all.addAll(listeners);
        TimeoutPolicy timeouts = merged.timeouts;
        Route.Dns dns = dnsTemplate == null ? null : new Route.Dns(dnsTemplate, dnsRefresh);
        BackendSelector selector = merged.selector.forRoute(prefix);
        if (selector == null) {
            // Accepted, it failed every request on the route with 500 ("Backend selector null failed").
            throw new IllegalStateException("backendSelector " + merged.selector.getClass().getName() + ".forRoute(\""
                    + prefix + "\") returned null (expected: the selector for the route, this by default)");
        }
        return new Route(prefix, new RouteBackends(backends), selector, timeouts,
                merged.originValidator, merged.maxMessageSize, merged.maxFragmentsPerMessage,
                merged.messageRateLimit, merged.plainHttp, merged.preserveHost, merged.compressionPassThrough,
                merged.passiveHealth, merged.failover, merged.maxPendingBackendHandshakes, merged.healthCheck, dns,
                Listeners.of(all),
                merged.authenticator == Authenticator.allowAll() ? null : merged.authenticator);
    }
}
