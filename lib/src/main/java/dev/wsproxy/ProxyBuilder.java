package dev.wsproxy;

import static java.util.Objects.requireNonNull;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;

import org.eclipse.jetty.server.Handler;
import org.jspecify.annotations.Nullable;

import dev.wsproxy.internal.Cidr;
import dev.wsproxy.internal.Durations;
import dev.wsproxy.internal.ProxyConfig;
import dev.wsproxy.internal.Route;
import dev.wsproxy.internal.RouteSettings;

/**
 * Builds a {@link WebSocketProxy}: routes, their backends, and the strategies that pick backends, time sessions out
 * and check origins.
 *
 * <pre>{@code
 * WebSocketProxy proxy = ProxyBuilder.create()
 *         .listen("0.0.0.0", 8080)
 *         .route("/ws/", Backend.of("ws://10.0.0.1:9000"), Backend.of("ws://10.0.0.2:9000"))
 *         .timeoutPolicy(TimeoutPolicy.idle(Duration.ofMinutes(10)))
 *         .originValidator(OriginValidator.allowList("https://app.example.com"))
 *         .build();
 * proxy.start();
 * }</pre>
 *
 * <p>A route is a path prefix; the longest prefix that starts the request path wins. Settings made on this builder
 * apply to every route that does not set its own in {@link #route(String, Consumer)}. Each setter validates its value
 * at once; {@link #build()} checks the combination. A builder is not thread-safe; the proxy it builds is immutable.
 * Every duration longer than 100 years counts as 100 years, wherever the API takes one (here, in a
 * {@link TimeoutPolicy}, a {@link HealthCheck}, {@link WebSocketProxy#stop(Duration)}): {@code
 * ChronoUnit.FOREVER.getDuration()} means "never".
 */
public final class ProxyBuilder {

    /** The host {@link WebSocketProxy#start()} binds to unless {@link #listen} says otherwise: {@value}. */
    public static final String DEFAULT_HOST = "127.0.0.1";

    /** The port {@link WebSocketProxy#start()} binds to unless {@link #listen} says otherwise: {@value}. */
    public static final int DEFAULT_PORT = 8080;

    /** The largest data message relayed in either direction unless set: {@value} bytes (64 MiB). */
    public static final long DEFAULT_MAX_MESSAGE_SIZE = 64L * 1024 * 1024;

    /**
     * The frames a data message may consist of, beyond one per KiB of its payload, unless set: {@value}.
     *
     * @see #maxFragmentsPerMessage(int)
     */
    public static final int DEFAULT_MAX_FRAGMENTS_PER_MESSAGE = 1024;

    /**
     * The backend handshakes that may be in flight to one backend at once unless set: {@value}.
     *
     * @see #maxPendingBackendHandshakes(int)
     */
    public static final int DEFAULT_MAX_PENDING_BACKEND_HANDSHAKES = 1024;

    /**
     * The leading bits of an IPv6 client address that make one client for the per-address limits unless set:
     * {@value}.
     *
     * @see #perIpIpv6Prefix(int)
     */
    public static final int DEFAULT_PER_IP_IPV6_PREFIX = 64;

    /** How long {@link WebSocketProxy#close()} lets sessions close before dropping them: 10 seconds. */
    public static final Duration DEFAULT_DRAIN_TIMEOUT = Duration.ofSeconds(10);

    /** How long a connection has to deliver a complete request head unless set: 10 seconds. */
    public static final Duration DEFAULT_HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);

    /** How many connections may wait for a request head at once unless set: {@value}. */
    public static final int DEFAULT_MAX_PENDING_HANDSHAKES = 4096;

    private String host = DEFAULT_HOST;
    private int port = DEFAULT_PORT;
    private boolean reusePort;
    private final Map<String, RouteSettings> routes = new LinkedHashMap<>();
    private final RouteSettings defaults = RouteSettings.proxyDefaults(DEFAULT_MAX_MESSAGE_SIZE);
    private @Nullable Handler nextHandler;
    private Duration drainTimeout = DEFAULT_DRAIN_TIMEOUT;
    private List<String> trustedProxies = List.of();
    private int maxConnectionsPerIp = Integer.MAX_VALUE;
    private int maxConnections = Integer.MAX_VALUE;
    private int handshakeRatePerIp;
    private int perIpIpv6Prefix = DEFAULT_PER_IP_IPV6_PREFIX;
    private Duration handshakeTimeout = DEFAULT_HANDSHAKE_TIMEOUT;
    private int maxPendingHandshakes = DEFAULT_MAX_PENDING_HANDSHAKES;
    private @Nullable ServerTls tls;
    private BackendTls backendTls = BackendTls.systemTrust();

    private ProxyBuilder() {
    }

    /**
     * Returns a new builder with the defaults: {@code 127.0.0.1:8080}, {@link BackendSelector#roundRobin()},
     * {@link TimeoutPolicy#ofDefaults()}, {@link OriginValidator#allowAny()}, 64 MiB messages, plain HTTP proxied to
     * the backends, the client's {@code Host} kept.
     *
     * @return a new builder
     */
    public static ProxyBuilder create() {
        return new ProxyBuilder();
    }

    ProxyBuilder copy() {
        ProxyBuilder copy = new ProxyBuilder();
        copy.host = host;
        copy.port = port;
        copy.reusePort = reusePort;
        routes.forEach((prefix, settings) -> copy.routes.put(prefix, settings.copy()));
        copy.defaults.overrideWith(defaults);
        copy.nextHandler = nextHandler;
        copy.drainTimeout = drainTimeout;
        copy.trustedProxies = trustedProxies;
        copy.maxConnectionsPerIp = maxConnectionsPerIp;
        copy.maxConnections = maxConnections;
        copy.handshakeRatePerIp = handshakeRatePerIp;
        copy.perIpIpv6Prefix = perIpIpv6Prefix;
        copy.handshakeTimeout = handshakeTimeout;
        copy.maxPendingHandshakes = maxPendingHandshakes;
        copy.tls = tls;
        copy.backendTls = backendTls;
        return copy;
    }

    /**
     * Gives routes of this builder other backends ({@link WebSocketProxy#toBuilder()}: a proxy's current ones); a
     * route not in {@code backends} keeps its own, and so does one that does not exist here.
     */
    ProxyBuilder withBackends(Map<String, List<Backend>> backends) {
        backends.forEach((prefix, list) -> {
            RouteSettings settings = routes.get(prefix);
            if (settings != null) {
                settings.backends(list);
            }
        });
        return this;
    }

    /**
     * Sets the address {@link WebSocketProxy#start()} binds to. Not used when the proxy is mounted with
     * {@link WebSocketProxy#handler()}.
     *
     * @param host a host name or IP address, an IPv6 one with or without brackets ({@code ::1} or {@code [::1]});
     *         {@code 0.0.0.0} for every interface
     * @param port a port from 0 to 65535; 0 picks a free port, see {@link WebSocketProxy#uri()}
     * @return this builder
     * @throws IllegalArgumentException if the host is blank, has a space, a control or a format character (ASCII or
     *         not: {@code U+0085}, {@code U+00A0}, {@code U+202E}), or has brackets other than around an IPv6 address
     */
    public ProxyBuilder listen(String host, int port) {
        requireNonNull(host, "host");
        if (!host.isBlank() && host.chars().anyMatch(ProxyBuilder::notInHost)) {
            // Accepted, no such name could be bound: start() failed with the character in its message, raw. Each is
            // shown escaped but the ASCII space: a control, another space or a format character (U+202E turns the
            // text after it around) would otherwise act on the message too.
            StringBuilder shown = new StringBuilder();
            host.chars().forEach(c -> shown.append(c != ' ' && notInHost(c)
                    ? String.format(Locale.ROOT, "\\u%04X", c) : String.valueOf((char) c)));
            throw new IllegalArgumentException("host: '" + shown
                    + "' (expected: a host name or address, without spaces, control or format characters)");
        }
        // The URI of the bound server adds the brackets an IPv6 address needs: keep the address bare.
        String bare = host.length() > 2 && host.startsWith("[") && host.endsWith("]")
                ? host.substring(1, host.length() - 1) : host;
        if (bare.isBlank() || bare.contains("[") || bare.contains("]") || (!bare.equals(host) && !bare.contains(":"))) {
            throw new IllegalArgumentException("host: '" + host
                    + "' (expected: a host name or address; brackets only around an IPv6 address, like [::1])");
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port: " + port + " (expected: 0 to 65535)");
        }
        this.host = bare;
        this.port = port;
        return this;
    }

    /**
     * Whether {@code c} has no place in a host to listen on: a space or a control character, ASCII or not
     * ({@code U+0085}, {@code U+00A0}, {@code U+2028}), or a format character ({@code U+200B}, {@code U+202E}).
     */
    private static boolean notInHost(int c) {
        return Character.isISOControl(c) || Character.isWhitespace(c) || Character.isSpaceChar(c)
                || Character.getType(c) == Character.FORMAT;
    }

    /**
     * Lets another process listen on the same address while this proxy runs ({@code SO_REUSEPORT}, on Linux and macOS),
     * for a restart that refuses no client: start the new proxy (another JVM, a new version) on the same {@link #listen
     * address}, wait until it listens, then stop this one. The kernel spreads new connections over both while both
     * listen; {@link WebSocketProxy#stop(Duration)} then closes this proxy's listening socket before it drains, so from
     * that moment every new connection goes to the new proxy, while this one's sessions get their {@code 1001} and end.
     * It also closes the connections kept alive for a next request, and each connection whose exchange ends during the
     * drain, so that their clients send their next request to the new proxy too (an HTTP client reopens a closed
     * keep-alive connection; this needs the request-head guard, on unless both {@link #handshakeTimeout(Duration)} is
     * zero and {@link #maxPendingHandshakes(int)} is unlimited). Without it, a stopping proxy answers new upgrades
     * {@code 503} until its drain ends, and a second process cannot bind the address at all. (Connections the kernel
     * had queued on the closed socket but the proxy had not yet accepted are reset, as with nginx's and HAProxy's
     * {@code reuseport}: a client retries them. On Linux 5.14 and later, {@code sysctl net.ipv4.tcp_migrate_req=1}
     * has the kernel hand them to the new proxy's socket instead; it is off by default and applies to the whole
     * network namespace, so it is yours to set.)
     *
     * <p>Every process bound to the address must set it, and run as the same user. Not used when the proxy is mounted
     * with {@link WebSocketProxy#handler()}: your connector's {@code setReusePort} does it there. Default: off.
     *
     * @param reusePort whether to bind with {@code SO_REUSEPORT} and close the listening socket when the stop begins
     * @return this builder
     */
    public ProxyBuilder reusePort(boolean reusePort) {
        this.reusePort = reusePort;
        return this;
    }

    /**
     * Adds a route: upgrade requests whose path starts with {@code pathPrefix} are proxied to these backends.
     *
     * @param pathPrefix a path prefix starting with {@code /}, like {@code /ws/}, without {@code .} or {@code ..}
     *         segments or {@code ;parameters} (request paths are matched without them)
     * @param backends one or more backends, each URI once (two backends with one URI would be one backend to
     *         failover, health and draining), however spelled: {@code ws://h}, {@code ws://H:80} and {@code ws://h:80}
     *         are one URI
     * @return this builder
     * @throws IllegalArgumentException if the prefix is malformed or already routed, no backend is given, or a URI is
     *         given twice
     */
    public ProxyBuilder route(String pathPrefix, Backend... backends) {
        requireNonNull(backends, "backends");
        return route(pathPrefix, route -> route.backends(backends));
    }

    /**
     * Adds a route configured by {@code configurer}, which must set its backends and may override any proxy-wide
     * setting for this route only.
     *
     * @param pathPrefix a path prefix starting with {@code /}, like {@code /ws/}, without {@code .} or {@code ..}
     *         segments or {@code ;parameters} (request paths are matched without them)
     * @param configurer sets the route up
     * @return this builder
     * @throws IllegalArgumentException if the prefix is malformed or already routed
     */
    public ProxyBuilder route(String pathPrefix, Consumer<RouteBuilder> configurer) {
        requireNonNull(pathPrefix, "pathPrefix");
        requireNonNull(configurer, "configurer");
        RouteSettings.validatePrefix(pathPrefix);
        if (routes.containsKey(pathPrefix)) {
            throw new IllegalArgumentException("pathPrefix: " + pathPrefix + " (expected: a prefix not routed yet)");
        }
        RouteSettings settings = new RouteSettings(pathPrefix);
        configurer.accept(new RouteBuilder(settings));
        routes.put(pathPrefix, settings);
        return this;
    }

    /**
     * Sets the backend selector of every route that sets none. Default: {@link BackendSelector#roundRobin()}.
     *
     * @param selector the selector; {@link BackendSelector#forRoute(String)} is called once per route
     * @return this builder
     */
    public ProxyBuilder backendSelector(BackendSelector selector) {
        defaults.selector(requireNonNull(selector, "selector"));
        return this;
    }

    /**
     * Sets the timeouts of every route that sets none. Default: {@link TimeoutPolicy#ofDefaults()}.
     *
     * @param policy the timeout policy
     * @return this builder
     */
    public ProxyBuilder timeoutPolicy(TimeoutPolicy policy) {
        defaults.timeouts(requireNonNull(policy, "policy"));
        return this;
    }

    /**
     * Sets the Origin check of every route that sets none. Default: {@link OriginValidator#allowAny()}.
     *
     * @param validator the origin validator
     * @return this builder
     */
    public ProxyBuilder originValidator(OriginValidator validator) {
        defaults.originValidator(requireNonNull(validator, "validator"));
        return this;
    }

    /**
     * Sets the largest data message, in bytes, relayed in either direction on routes that set none. The sender of a
     * larger message gets close code {@code 1009 Message Too Big} and the other leg {@code 1001 Going Away}. Messages
     * are relayed frame by frame as they arrive, so this limit is a policy, not a buffer size. It must fit what the
     * backend sends as well: a backend that wraps or escapes what clients send (a chat broadcasting each text in JSON)
     * sends larger messages than it accepts, and a limit set to what it accepts closes its receivers. Default:
     * {@link #DEFAULT_MAX_MESSAGE_SIZE}.
     *
     * @param bytes a positive size; {@link Long#MAX_VALUE} for no limit
     * @return this builder
     */
    public ProxyBuilder maxMessageSize(long bytes) {
        defaults.maxMessageSize(bytes);
        return this;
    }

    /**
     * Caps the frames one data message may be split into, in either direction, on routes that set none: against a
     * flood of empty or tiny continuation frames, which cost the proxy a relayed frame each while carrying nothing
     * (RFC 6455 section 5.4 sets no limit). A message may have {@code fragments} frames plus one per KiB of payload
     * it carries, so a sender whose frames carry 1 KiB or more each is never limited, whatever the message size;
     * only one that splits a message into more than {@code fragments} small frames is. The sender of such a message
     * gets close code {@code 1009 Message Too Big} ({@code "too many fragments"}) and the other leg
     * {@code 1001 Going Away}, as for {@link #maxMessageSize(long)}.
     *
     * <p>What is counted are the frames the peer sent, not the pieces Jetty delivers: Jetty hands a frame that has not
     * fully arrived to the proxy in several pieces, one per network read, so a large frame trickling in over a slow
     * link is many pieces but still one frame here. Where the proxy cannot install its own frame parser (Jetty's jars
     * on the module path without {@code --add-opens}, see {@code docs/design.md}) it guesses instead: a frame is
     * counted when it carries less than 128 bytes, or was read together with the frame before it, so a trickling frame
     * counts at most once per tiny read, and a flood of tiny frames is counted whatever the reads. Default:
     * {@link #DEFAULT_MAX_FRAGMENTS_PER_MESSAGE}.
     *
     * @param fragments a positive count; {@link Integer#MAX_VALUE} for no limit
     * @return this builder
     * @see RouteBuilder#maxFragmentsPerMessage(int)
     */
    public ProxyBuilder maxFragmentsPerMessage(int fragments) {
        defaults.maxFragmentsPerMessage(fragments);
        return this;
    }

    /**
     * Limits how fast each client may send, on routes that set none: at most {@code messagesPerSecond} messages per
     * second per session, with bursts of up to {@code messagesPerSecond} (a token bucket that refills continuously).
     * Every data message counts once, when its first frame arrives, and so does every ping and pong, so a ping flood
     * is limited too; close frames do not count. A client over the rate gets close code
     * {@code 1008 Policy Violation} ({@code "message rate exceeded"}) and the backend {@code 1001 Going Away}.
     * Messages from the backend are not limited: the backend is trusted, and a client that cannot keep up slows it
     * down through TCP instead. Default: 0, no limit.
     *
     * @param messagesPerSecond messages per second and burst size, up to 1,000,000; 0 turns the limit off
     * @return this builder
     * @see RouteBuilder#messageRateLimit(int)
     */
    public ProxyBuilder messageRateLimit(int messagesPerSecond) {
        defaults.messageRateLimit(messagesPerSecond);
        return this;
    }

    /**
     * Sets what routes that set nothing do with requests that are not WebSocket upgrades. Default:
     * {@link PlainHttp#PROXY_TO_BACKEND}.
     *
     * @param plainHttp the behaviour
     * @return this builder
     */
    public ProxyBuilder plainHttp(PlainHttp plainHttp) {
        defaults.plainHttp(requireNonNull(plainHttp, "plainHttp"));
        return this;
    }

    /**
     * Sets whether backends get the client's {@code Host} header ({@code true}, the default: like nginx's
     * {@code proxy_set_header Host $host}) or the authority of the backend URI ({@code false}). With a {@code wss://}
     * backend the TLS handshake names the backend's host while {@code Host} is the client's: a backend that checks
     * {@code Host} against its certificate (Jetty's default {@code SecureRequestCustomizer}) answers {@code 400 Invalid
     * SNI} unless its certificate also names the client's host; use {@code false} for it.
     *
     * @param preserveHost {@code true} to send the client's {@code Host}
     * @return this builder
     */
    public ProxyBuilder preserveHost(boolean preserveHost) {
        defaults.preserveHost(preserveHost);
        return this;
    }

    /**
     * Sets whether routes that set nothing let clients and backends agree on {@code permessage-deflate} (RFC 7692)
     * through the proxy, which then relays their compressed frames as they are, as a byte tunnel like nginx would.
     * The proxy never inflates nor deflates: it offers the backend the client's {@code permessage-deflate} offers
     * (those that are valid; other extensions never), checks that the backend's {@code 101} accepts at most one of
     * them ({@code 502} otherwise) and gives the client that answer. A well-formed answer on other terms than the
     * client's offers allow (RFC 7692 section 7.1: servers such as Jetty's and gorilla's ignore an offer's
     * {@code server_max_window_bits}, which any client may send) is a {@code 502} for that client only: neither a
     * failure for {@link #passiveHealth(int, Duration) passive health} nor retried on another backend. Default:
     * {@code false}, and neither leg then negotiates any extension.
     *
     * <p>The trade-off: the proxy cannot look inside a compressed message. It does not check the UTF-8 of compressed
     * text messages (uncompressed ones in the same session still are, {@code 1007}), and {@link #maxMessageSize(long)}
     * and {@link #maxFragmentsPerMessage(int)} count the compressed bytes on the wire, so a small message that inflates
     * to gigabytes (a decompression bomb) reaches the peer whole: each peer must bound what it inflates itself, as
     * behind nginx (Jetty's {@code maxTextMessageSize} and {@code maxBinaryMessageSize} do, on the inflated size). A
     * compressed frame costs the proxy no more than another; RSV1 on a continuation or a control frame is a protocol
     * error ({@code 1002}). Clients over HTTP/2 (RFC 8441) negotiate it the same way.
     *
     * @param passThrough {@code true} to let the peers negotiate {@code permessage-deflate} end to end
     * @return this builder
     * @see RouteBuilder#compressionPassThrough(boolean)
     */
    public ProxyBuilder compressionPassThrough(boolean passThrough) {
        defaults.compressionPassThrough(passThrough);
        return this;
    }

    /**
     * Sets passive health checks for routes that set none, like nginx's {@code max_fails} and {@code fail_timeout}: a backend
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
     * is not a failure: the backend answered, a success; so is a {@code 101} that accepts {@code permessage-deflate}
     * on terms the client's offers do not allow (see {@link #compressionPassThrough(boolean)}). Routes with a single backend never take it down (its
     * failures still show in {@link BackendStatus#recentFailures()}), so never put it on trial. Active
     * {@linkplain HealthCheck health checks} keep their own verdict: their probes neither start nor end a trial.
     * Default: 1 failure, 10 seconds.
     *
     * @param maxFails failures that take a backend down; 0 turns passive health off
     * @param failTimeout the window that counts failures, and how long a backend stays down
     * @return this builder
     */
    public ProxyBuilder passiveHealth(int maxFails, Duration failTimeout) {
        requireNonNull(failTimeout, "failTimeout");
        defaults.passiveHealth(maxFails, failTimeout);
        return this;
    }

    /**
     * Sets failover for routes that set none, like nginx's {@code proxy_next_upstream error timeout}: when a backend connection
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
    public ProxyBuilder failover(int maxAttempts, Duration maxTime) {
        requireNonNull(maxTime, "maxTime");
        defaults.failover(maxAttempts, maxTime);
        return this;
    }

    /**
     * Caps the backend handshakes in flight to each backend, on routes that set none: a handshake counts from the
     * start of its TCP connect, through TLS and the upgrade request, until the backend's {@code 101} or its failure.
     * Without a cap, a backend that accepts connections but does not answer (stalled, black-holed, its accept queue
     * full) would collect every handshake sent to it until the connect timeout, each with a socket and its buffers.
     * (The client side has its own cap, {@link #maxPendingHandshakes(int)}: connections still sending their request.)
     *
     * <p>A backend at its cap is left out of {@link SelectionContext#candidates()} until one of its handshakes ends,
     * so selectors pick another; when every backend is busy, the client gets {@code 503} with {@code Retry-After} and
     * listeners get {@link ProxyListener#onHandshakeRejected} with an {@code "every backend busy"} reason. A selector
     * that picks a busy backend anyway gets a failed attempt with {@code 503} ({@code "backend busy"}), which
     * {@link #failover(int, Duration) failover} moves on from. Neither is a failure for
     * {@link #passiveHealth(int, Duration) passive health}: the backend is busy, not broken. A handshake gives its place back when it ends, however it ends: the backend's
     * {@code 101} or refusal, a failure, the connect timeout, the proxy stopping, the session closed by
     * {@link ProxySession#close}, or the client leaving meanwhile, which the proxy notices at once on its own
     * connectors ({@link WebSocketProxy#serverConnector}); behind another connector, the handshake goes on until the
     * backend answers or the connect timeout.
     * {@link BackendStatus#pendingHandshakes()} shows the count; like the active sessions, it is kept per route.
     *
     * <p>Default: {@link #DEFAULT_MAX_PENDING_BACKEND_HANDSHAKES}. A healthy backend answers within a few round trips,
     * so 1,024 in flight still admit 20,000 handshakes a second to a backend that takes 50 ms for each, more than one
     * backend process upgrades: the cap bites only when a backend stops answering, and then limits what that backend
     * holds to 1,024 sockets.
     *
     * @param perBackend the most handshakes in flight to one backend, at least 1; {@link Integer#MAX_VALUE} for no cap
     * @return this builder
     * @see RouteBuilder#maxPendingBackendHandshakes(int)
     */
    public ProxyBuilder maxPendingBackendHandshakes(int perBackend) {
        defaults.maxPendingBackendHandshakes(perBackend);
        return this;
    }

    /**
     * Probes the backends of every route that sets none actively; see {@link HealthCheck}. Default: none (passive health only).
     *
     * @param healthCheck the check
     * @return this builder
     */
    public ProxyBuilder healthCheck(HealthCheck healthCheck) {
        defaults.healthCheck(requireNonNull(healthCheck, "healthCheck"));
        return this;
    }

    /**
     * Adds a listener for the sessions of every route. Listeners are called in the order they were added.
     *
     * @param listener the listener
     * @return this builder
     */
    public ProxyBuilder listener(ProxyListener listener) {
        defaults.addListener(requireNonNull(listener, "listener"));
        return this;
    }

    /**
     * Sets the handler that gets the requests the proxy does not take: requests outside every route, and plain HTTP
     * on routes set to {@link PlainHttp#NEXT_HANDLER}. Without one, such requests get {@code 404}. It is the handler
     * {@link WebSocketProxy#handler()} wraps, standalone or mounted; when mounted, {@code handler().setHandler(...)}
     * replaces it.
     *
     * <p>The proxy starts and stops the handler with itself. A Jetty handler belongs to one server at a time, and the
     * proxies built from this builder, or with {@link WebSocketProxy#toBuilder()}, share it: one of them may run at a
     * time. Starting or mounting another while one runs throws {@link IllegalStateException}; once that one stopped,
     * the other starts with the handler.
     *
     * <p>Standalone, the handler may not stop the proxy on the thread it was called on (an admin endpoint): that
     * {@link WebSocketProxy#stop(Duration)} throws {@link IllegalStateException}; hand it to another thread.
     *
     * @param handler the next handler, for instance a {@code ResourceHandler} serving a web page
     * @return this builder
     */
    public ProxyBuilder nextHandler(Handler handler) {
        this.nextHandler = requireNonNull(handler, "handler");
        return this;
    }

    /**
     * Sets how long {@link WebSocketProxy#close()} lets open sessions end after their {@code 1001} before it drops
     * the connections left (those whose peer does not read). Default: {@link #DEFAULT_DRAIN_TIMEOUT}.
     *
     * @param timeout zero or a positive duration
     * @return this builder
     */
    public ProxyBuilder drainTimeout(Duration timeout) {
        requireNonNull(timeout, "timeout");
        if (timeout.isNegative()) {
            throw new IllegalArgumentException("drainTimeout: " + timeout + " (expected: >= 0)");
        }
        this.drainTimeout = Durations.stored(timeout);
        return this;
    }

    /**
     * Sets the proxies in front of this one whose forwarding headers are trusted (nginx's {@code set_real_ip_from}
     * with {@code real_ip_recursive on}). Default: none. From a peer outside these blocks, inbound
     * {@code X-Forwarded-*}, {@code X-Real-IP} and {@code Forwarded} headers are discarded and replaced, and the
     * client is the peer. From a peer inside them, the client is the right-most {@code X-Forwarded-For} hop that is
     * not a trusted proxy (hops split at every comma, as nginx splits them, so that no quote the client sends can
     * take in the hop a trusted proxy appended), and {@code X-Forwarded-Proto} / {@code X-Forwarded-Host} give the
     * external scheme and host.
     * That client address is the one selectors ({@link BackendSelector#ipHash()}), per-address limits (an IPv6 one by
     * its block, {@link #perIpIpv6Prefix(int)}), logs and {@code X-Real-IP} use. Either way the backend gets the
     * proxy's own {@code X-Forwarded-For}, {@code X-Real-IP}, {@code X-Forwarded-Proto} and {@code X-Forwarded-Host},
     * and no other forwarding header: a trusted proxy's {@code Forwarded}, {@code X-Forwarded-Port}, {@code -Prefix}
     * and the like are dropped too, since a balancer that does not set them passes on the client's. A client-address
     * header of a CDN or platform ({@code True-Client-IP}, {@code CF-Connecting-IP}, {@code X-Client-IP},
     * {@code Client-IP} and others, which many backends read first) goes on only with the client address computed
     * here, whoever sent it.
     *
     * @param cidrs address blocks like {@code 10.0.0.0/8}, {@code 192.168.1.7} or {@code fd00::/8}; an IPv4-mapped
     *         block ({@code ::ffff:10.0.0.0/104}) is the IPv4 block it maps ({@code 10.0.0.0/8}), as IPv4-mapped peers
     *         count as their IPv4 address
     * @return this builder
     * @throws IllegalArgumentException if a block is malformed (host names are not accepted)
     */
    public ProxyBuilder trustedProxies(String... cidrs) {
        requireNonNull(cidrs, "cidrs");
        List<String> blocks = new ArrayList<>();
        for (String cidr : cidrs) {
            blocks.add(Cidr.parse(requireNonNull(cidr, "cidr")).toString());
        }
        this.trustedProxies = List.copyOf(blocks);
        return this;
    }

    /**
     * Limits the concurrent sessions of one client address (nginx's {@code limit_conn}): one more gets
     * {@code 429 Too Many Requests} before any backend connection. A session holds its slot from its handshake to its
     * end, and gives it back on every path (close, error, drop, failed handshake). The client address is the one
     * {@link #trustedProxies(String...)} decides; an IPv6 client counts with every address of its /64
     * ({@link #perIpIpv6Prefix(int)}). Default: no limit.
     *
     * @param max the most sessions per client address, at least 1
     * @return this builder
     * @see #handshakeRatePerIp(int)
     */
    public ProxyBuilder maxConnectionsPerIp(int max) {
        this.maxConnectionsPerIp = atLeastOne("maxConnectionsPerIp", max);
        return this;
    }

    /**
     * Limits the concurrent sessions of the whole proxy: one more gets {@code 503} with {@code Retry-After} before any
     * backend connection. Default: no limit.
     *
     * @param max the most sessions in all, at least 1
     * @return this builder
     */
    public ProxyBuilder maxConnections(int max) {
        this.maxConnections = atLeastOne("maxConnections", max);
        return this;
    }

    /**
     * Limits how fast one client address may start handshakes: a token bucket of {@code perSecond} tokens a second
     * with a burst of {@code perSecond}. A handshake over the rate gets {@code 429} with {@code Retry-After: 1} right
     * after the request is validated as an upgrade (and the proxy found not shutting down), before any other check.
     * The client address is the one {@link #trustedProxies(String...)} decides; an IPv6 client shares the bucket of
     * its /64 ({@link #perIpIpv6Prefix(int)}). Default: no limit.
     *
     * @param perSecond handshakes per second per client address, at least 1
     * @return this builder
     * @see #maxConnectionsPerIp(int)
     */
    public ProxyBuilder handshakeRatePerIp(int perSecond) {
        this.handshakeRatePerIp = atLeastOne("handshakeRatePerIp", perSecond);
        return this;
    }

    /**
     * Sets how many leading bits of an IPv6 client address make one client for {@link #maxConnectionsPerIp(int)} and
     * {@link #handshakeRatePerIp(int)}: every address in that block counts against one limit. An IPv6 host gets a
     * whole /64 (a home network, a cloud VM), so counted by its full address one client could open sessions from
     * 2^64 addresses, each with a limit of its own; the devices of one home share one /64 as they share one NATed
     * IPv4 address (Cloudflare and many rate limiters count IPv6 clients by /64). An IPv4 client, and an IPv4-mapped
     * IPv6 one ({@code ::ffff:192.0.2.7}, counted as {@code 192.0.2.7}), is always counted by its address. Only the
     * limits count by the block: listeners, {@link ProxySession#clientAddress()}, the access log and the
     * {@code X-Real-IP} and {@code X-Forwarded-For} the backends get name the full address (a refusal's reason to
     * listeners names both: {@code too many sessions from 2001:db8::2 in 2001:db8::/64}). Default:
     * {@link #DEFAULT_PER_IP_IPV6_PREFIX}.
     *
     * @param bits the prefix length, 1 to 128; 128 counts each IPv6 address on its own
     * @return this builder
     * @see #maxConnectionsPerIp(int)
     * @see #handshakeRatePerIp(int)
     */
    public ProxyBuilder perIpIpv6Prefix(int bits) {
        if (bits < 1 || bits > 128) {
            throw new IllegalArgumentException("perIpIpv6Prefix: " + bits + " (expected: 1 to 128)");
        }
        this.perIpIpv6Prefix = bits;
        return this;
    }

    /**
     * Sets how long a client connection has to deliver a complete request head (nginx's
     * {@code client_header_timeout}, HAProxy's {@code timeout http-request}), against slowloris: a connection that has
     * not sent its whole WebSocket handshake request (or any other HTTP request) this long after it was accepted is
     * closed, however steadily it drips bytes. Jetty's idle timeout cannot do this: it restarts on every byte. On a
     * keep-alive connection the time runs again from the end of each exchange, so the next request must also come
     * within it. The deadline ends when the request head has been read, before any handler runs: from then on the
     * backend connect timeout ({@link TimeoutPolicy}) governs a handshake, and an upgraded session is never touched.
     * Nothing can be answered in the middle of a request head, so the connection is just closed.
     *
     * <p>It guards every HTTP/1 connector of the server the proxy runs in, also when the proxy is mounted with
     * {@link WebSocketProxy#handler()}, and every request on them, whichever handler takes it. Default:
     * {@link #DEFAULT_HANDSHAKE_TIMEOUT}, five times a slow mobile TLS handshake, under Jetty's 30 s idle timeout.
     *
     * @param timeout a positive duration (under a millisecond counts as one); {@link Duration#ZERO} turns the
     *         deadline off
     * @return this builder
     * @see #maxPendingHandshakes(int)
     */
    public ProxyBuilder handshakeTimeout(Duration timeout) {
        requireNonNull(timeout, "timeout");
        if (timeout.isNegative()) {
            throw new IllegalArgumentException("handshakeTimeout: " + timeout + " (expected: positive, or 0 for none)");
        }
        this.handshakeTimeout = Durations.stored(timeout);
        return this;
    }

    /**
     * Caps the connections that are waiting for a complete request head at once: just accepted, or idle between two
     * requests on a keep-alive connection (see {@link #handshakeTimeout(Duration)}). Connections whose request is being
     * handled, including handshakes waiting for their backend, and upgraded sessions do not count. When one more
     * would wait, the <em>oldest</em> waiting connection is closed, not the new one: a flood of stalled sockets then
     * mostly closes its own, while a real client, whose request follows its connect within a round trip, gets through.
     * Default: {@link #DEFAULT_MAX_PENDING_HANDSHAKES}.
     *
     * @param max the most waiting connections, at least 1; {@link Integer#MAX_VALUE} for no cap
     * @return this builder
     */
    public ProxyBuilder maxPendingHandshakes(int max) {
        this.maxPendingHandshakes = atLeastOne("maxPendingHandshakes", max);
        return this;
    }

    /**
     * Serves {@code wss://} (TLS) instead of {@code ws://} on the address of {@link #listen(String, int)}. Backends
     * then get {@code X-Forwarded-Proto: https}, and {@link WebSocketProxy#uri()} is an {@code https} URI. Used by
     * {@link WebSocketProxy#start()} only: when the proxy is mounted with {@link WebSocketProxy#handler()}, TLS is
     * your connector's, and the proxy sees it through the request; a {@code tls} setting is then ignored, with a
     * warning in the log each time the handler starts. Clients may be asked for certificates (mutual TLS:
     * {@link ServerTls#withClientCertificates(java.nio.file.Path)}), which hooks read with
     * {@link HandshakeRequest#clientCertificates()}, as they read those your connector verified when mounted.
     * Default: none.
     *
     * @param tls the certificate and settings, for instance {@link ServerTls#keyStore(java.nio.file.Path, String)}
     * @return this builder
     */
    public ProxyBuilder tls(ServerTls tls) {
        this.tls = requireNonNull(tls, "tls");
        return this;
    }

    /**
     * Sets how the proxy verifies {@code wss://} backends (and {@code https} health checks and plain HTTP): trusted
     * certificates, a client certificate for mutual TLS, or, for development only, no verification. Certificates and
     * host names are always verified otherwise; a backend that fails gets no request, and the client {@code 502}.
     * Default: {@link BackendTls#systemTrust()}.
     *
     * @param tls the backend TLS configuration
     * @return this builder
     */
    public ProxyBuilder backendTls(BackendTls tls) {
        this.backendTls = requireNonNull(tls, "tls");
        return this;
    }

    /**
     * Sets the authentication of every route that sets none: the authenticator sees each upgrade request after the
     * handshake, Origin and limit checks and before any backend connection, and either refuses it with a status of its
     * choosing or lets it through, with headers for the backend and attributes for the selector. Default: none.
     *
     * @param authenticator the authenticator; {@link Authenticator#allowAll()} for none
     * @return this builder
     * @see Authenticator
     */
    public ProxyBuilder authenticator(Authenticator authenticator) {
        defaults.authenticator(requireNonNull(authenticator, "authenticator"));
        return this;
    }

    private static int atLeastOne(String name, int value) {
        if (value < 1) {
            throw new IllegalArgumentException(name + ": " + value + " (expected: >= 1)");
        }
        return value;
    }

    /**
     * Returns the proxy. The builder can be changed and built again afterwards without affecting it.
     *
     * @return an immutable, not yet started proxy
     * @throws IllegalStateException if no route was added, a route has no backend, or a route's
     *         {@link BackendSelector#forRoute(String)} returned {@code null}
     */
    public WebSocketProxy build() {
        if (routes.isEmpty()) {
            throw new IllegalStateException("no route (expected: at least one route(pathPrefix, backends...))");
        }
        List<Route> resolved = new ArrayList<>();
        for (RouteSettings route : routes.values()) {
            resolved.add(route.resolve(defaults));
        }
        ProxyConfig config = new ProxyConfig(host, port, reusePort, resolved, nextHandler, drainTimeout,
                new ProxyConfig.Limits(trustedProxies, maxConnectionsPerIp, maxConnections, handshakeRatePerIp,
                        perIpIpv6Prefix, handshakeTimeout, maxPendingHandshakes),
                new ProxyConfig.Tls(tls, backendTls));
        return new WebSocketProxy(config, copy());
    }
}
