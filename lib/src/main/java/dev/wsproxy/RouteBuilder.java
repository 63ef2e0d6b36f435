package dev.wsproxy;

import static java.util.Objects.requireNonNull;

import java.time.Duration;
import java.util.List;

import dev.wsproxy.internal.RouteSettings;

/**
 * Configures one route of a {@link ProxyBuilder}: its backends and any setting that differs from the proxy-wide one.
 *
 * <pre>{@code
 * ProxyBuilder.create()
 *         .route("/ws/", Backend.of("ws://127.0.0.1:9000"))
 *         .route("/admin/", route -> route
 *                 .backends(Backend.of("ws://127.0.0.1:9100"))
 *                 .originValidator(OriginValidator.sameOrigin())
 *                 .plainHttp(PlainHttp.NEXT_HANDLER));
 * }</pre>
 *
 * <p>Every setting left unset here takes the proxy-wide value from {@link ProxyBuilder}.
 *
 * @see ProxyBuilder#route(String, java.util.function.Consumer)
 */
public final class RouteBuilder {

    private final RouteSettings settings;

    RouteBuilder(RouteSettings settings) {
        this.settings = settings;
    }

    /**
     * Sets the route's backends, replacing any set before.
     *
     * @param backends one or more backends, each URI once (two backends with one URI would be one backend to
     *         failover, health and draining), however spelled: {@code ws://h}, {@code ws://H:80} and {@code ws://h:80}
     *         are one URI
     * @return this builder
     * @throws IllegalArgumentException if none is given, or a URI is given twice
     */
    public RouteBuilder backends(Backend... backends) {
        requireNonNull(backends, "backends");
        settings.backends(List.of(backends));
        return this;
    }

    /**
     * Takes the route's backends from DNS: the host of {@code uri} is resolved to all its addresses now and every
     * {@code refresh}, and the route gets one backend per address (same scheme, port and path), replacing the list
     * like {@link WebSocketProxy#updateBackends} does (open sessions are not touched), except that a backend drained
     * with {@link WebSocketProxy#drain} and still in the answer stays draining (one that leaves the answer with no
     * session open is forgotten, and is a new backend if its address comes back). This is how a Kubernetes
     * headless service is followed. A failed resolution keeps the last list; until the first one succeeds the route
     * answers {@code 503}. Look-ups block, so they run on the server's thread pool; one it refuses (its queue full) is
     * tried again one {@code refresh} later, with a warning.
     *
     * <p>The JVM caches successful look-ups for 30 seconds by default ({@code networkaddress.cache.ttl}); set it at
     * or below {@code refresh}, for instance {@code Security.setProperty("networkaddress.cache.ttl", "10")} before the
     * first look-up, or the refresh sees stale addresses.
     *
     * @param uri a backend URI whose host is a DNS name, like {@code ws://chat.default.svc.cluster.local:8080}
     * @param refresh how often to resolve again (positive; less than a millisecond counts as one)
     * @return this builder
     */
    public RouteBuilder backendsFromDns(String uri, Duration refresh) {
        requireNonNull(uri, "uri");
        requireNonNull(refresh, "refresh");
        settings.dns(Backend.of(uri), refresh);
        return this;
    }

    /**
     * Sets the route's backend selector.
     *
     * @param selector the selector; its {@link BackendSelector#forRoute(String)} is called for this route
     * @return this builder
     * @see ProxyBuilder#backendSelector(BackendSelector)
     */
    public RouteBuilder backendSelector(BackendSelector selector) {
        settings.selector(requireNonNull(selector, "selector"));
        return this;
    }

    /**
     * Sets the route's timeouts.
     *
     * @param policy the timeout policy
     * @return this builder
     * @see ProxyBuilder#timeoutPolicy(TimeoutPolicy)
     */
    public RouteBuilder timeoutPolicy(TimeoutPolicy policy) {
        settings.timeouts(requireNonNull(policy, "policy"));
        return this;
    }

    /**
     * Sets the route's Origin check.
     *
     * @param validator the origin validator
     * @return this builder
     * @see ProxyBuilder#originValidator(OriginValidator)
     */
    public RouteBuilder originValidator(OriginValidator validator) {
        settings.originValidator(requireNonNull(validator, "validator"));
        return this;
    }

    /**
     * Sets the route's authentication; {@link Authenticator#allowAll()} turns a proxy-wide one off here.
     *
     * @param authenticator the authenticator
     * @return this builder
     * @see ProxyBuilder#authenticator(Authenticator)
     */
    public RouteBuilder authenticator(Authenticator authenticator) {
        settings.authenticator(requireNonNull(authenticator, "authenticator"));
        return this;
    }

    /**
     * Sets the route's largest data message, in bytes, in either direction.
     *
     * @param bytes a positive size
     * @return this builder
     * @see ProxyBuilder#maxMessageSize(long)
     */
    public RouteBuilder maxMessageSize(long bytes) {
        settings.maxMessageSize(bytes);
        return this;
    }

    /**
     * Sets the route's cap on the frames one data message may be split into (plus one per KiB of payload), in either
     * direction.
     *
     * @param fragments a positive count
     * @return this builder
     * @see ProxyBuilder#maxFragmentsPerMessage(int)
     */
    public RouteBuilder maxFragmentsPerMessage(int fragments) {
        settings.maxFragmentsPerMessage(fragments);
        return this;
    }

    /**
     * Sets the route's limit on the messages, pings and pongs each client may send per second.
     *
     * @param messagesPerSecond messages per second and burst size, up to 1,000,000; 0 turns the limit off
     * @return this builder
     * @see ProxyBuilder#messageRateLimit(int)
     */
    public RouteBuilder messageRateLimit(int messagesPerSecond) {
        settings.messageRateLimit(messagesPerSecond);
        return this;
    }

    /**
     * Sets what the route does with requests that are not WebSocket upgrades.
     *
     * @param plainHttp the behaviour
     * @return this builder
     * @see ProxyBuilder#plainHttp(PlainHttp)
     */
    public RouteBuilder plainHttp(PlainHttp plainHttp) {
        settings.plainHttp(requireNonNull(plainHttp, "plainHttp"));
        return this;
    }

    /**
     * Sets whether the backend gets the client's {@code Host} header or the backend's own authority (see
     * {@link ProxyBuilder#preserveHost(boolean)} for {@code wss://} backends that check it).
     *
     * @param preserveHost {@code true} to send the client's {@code Host}
     * @return this builder
     * @see ProxyBuilder#preserveHost(boolean)
     */
    public RouteBuilder preserveHost(boolean preserveHost) {
        settings.preserveHost(preserveHost);
        return this;
    }

    /**
     * Sets whether the route lets clients and backends agree on {@code permessage-deflate} through the proxy, whose
     * compressed frames it then relays as they are (see {@link ProxyBuilder#compressionPassThrough(boolean)} for the
     * trade-off: the peers must bound what they inflate).
     *
     * @param passThrough {@code true} to let the peers negotiate {@code permessage-deflate} end to end
     * @return this builder
     * @see ProxyBuilder#compressionPassThrough(boolean)
     */
    public RouteBuilder compressionPassThrough(boolean passThrough) {
        settings.compressionPassThrough(passThrough);
        return this;
    }

    /**
     * Sets passive health checks for this route, like nginx's {@code max_fails} and {@code fail_timeout}: a backend
     * whose connections fail {@code maxFails} times within {@code failTimeout} (refused, timed out, invalid
     * handshake; also those of plain HTTP requests the route forwards) gets no new sessions (nor plain HTTP requests)
     * for {@code failTimeout}. Then it is on trial, as nginx lets the first request after {@code fail_timeout} test a
     * server: one handshake or plain HTTP request at a time goes to it, and the others skip it as if it were down
     * (left out of {@link SelectionContext#candidates()} while that one is in flight); the first success brings it
     * back for good, the first failure takes it down for another {@code failTimeout} at once, whatever
     * {@code maxFails}. So a backend that swallows connection attempts costs one client a connect timeout per window,
     * not every client that arrives during one. On trial, the backend's {@link BackendStatus#state()} is
     * {@link BackendStatus.State#UP UP} and its {@link BackendStatus#recentFailures()} {@code 0}; the trial's attempt
     * shows in {@link BackendStatus#pendingHandshakes()} when it is an upgrade (a plain HTTP request holds no handshake
     * slot). A backend's own refusal (a status other than {@code 101})
     * is not a failure: the backend answered, a success. Routes with a single backend never take it down (its
     * failures still show in {@link BackendStatus#recentFailures()}), so never put it on trial. Active
     * {@linkplain HealthCheck health checks} keep their own verdict: their probes neither start nor end a trial.
     * Default: 1 failure, 10 seconds.
     *
     * @param maxFails failures that take a backend down; 0 turns passive health off
     * @param failTimeout the window that counts failures, and how long a backend stays down
     * @return this builder
     */
    public RouteBuilder passiveHealth(int maxFails, Duration failTimeout) {
        requireNonNull(failTimeout, "failTimeout");
        settings.passiveHealth(maxFails, failTimeout);
        return this;
    }

    /**
     * Sets failover for this route, like nginx's {@code proxy_next_upstream error timeout}: when a backend connection
     * fails before its {@code 101}, the next candidate the selector offers is tried, up to {@code maxAttempts}
     * backends in all and within {@code maxTime} from the first attempt. A backend's own refusal is relayed, not
     * retried, and nothing is retried once the client is upgraded. A plain HTTP request the route forwards goes to the
     * next candidate likewise when it failed in connecting (refused, timed out, TLS handshake: nothing of it reached
     * the backend) before any of its body was read from the client, never once it may have reached the backend.
     * Default: 3 attempts, 30 seconds.
     *
     * @param maxAttempts backends to try in all, at least 1 (1 turns failover off)
     * @param maxTime the time budget of all attempts together
     * @return this builder
     */
    public RouteBuilder failover(int maxAttempts, Duration maxTime) {
        requireNonNull(maxTime, "maxTime");
        settings.failover(maxAttempts, maxTime);
        return this;
    }

    /**
     * Caps the backend handshakes in flight to each backend of this route, from the TCP connect to the backend's
     * {@code 101} or failure. A backend at its cap is not a candidate for new sessions until one of them ends (and a
     * selector that picks it anyway gets a failed attempt with {@code 503}, which failover moves on from); it is not
     * a failure for passive health. Default:
     * {@link ProxyBuilder#DEFAULT_MAX_PENDING_BACKEND_HANDSHAKES}.
     *
     * @param perBackend the most handshakes in flight to one backend, at least 1; {@link Integer#MAX_VALUE} for no cap
     * @return this builder
     * @see ProxyBuilder#maxPendingBackendHandshakes(int)
     */
    public RouteBuilder maxPendingBackendHandshakes(int perBackend) {
        settings.maxPendingBackendHandshakes(perBackend);
        return this;
    }

    /**
     * Probes the backends of this route actively; see {@link HealthCheck}. Default: none (passive health only).
     *
     * @param healthCheck the check
     * @return this builder
     */
    public RouteBuilder healthCheck(HealthCheck healthCheck) {
        settings.healthCheck(requireNonNull(healthCheck, "healthCheck"));
        return this;
    }

    /**
     * Adds a listener for this route's sessions, called after the proxy-wide listeners.
     *
     * @param listener the listener
     * @return this builder
     */
    public RouteBuilder listener(ProxyListener listener) {
        settings.addListener(requireNonNull(listener, "listener"));
        return this;
    }
}
