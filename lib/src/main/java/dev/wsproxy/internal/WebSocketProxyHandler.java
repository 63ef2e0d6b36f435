package dev.wsproxy.internal;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;

import org.eclipse.jetty.client.HttpClient;
import org.eclipse.jetty.client.transport.HttpClientTransportOverHTTP;
import org.eclipse.jetty.http.HttpCookieStore;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpHeaderValue;
import org.eclipse.jetty.http.HttpMethod;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.http.HttpURI;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.NanoTime;
import org.eclipse.jetty.util.component.Graceful;
import org.eclipse.jetty.util.component.LifeCycle;
import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.eclipse.jetty.util.thread.Invocable;
import org.eclipse.jetty.util.thread.Scheduler;
import org.eclipse.jetty.websocket.core.Configuration;
import org.eclipse.jetty.websocket.core.WebSocketComponents;
import org.eclipse.jetty.websocket.core.WebSocketCoreSession;
import org.eclipse.jetty.websocket.core.client.WebSocketCoreClient;
import org.eclipse.jetty.websocket.core.exception.WebSocketTimeoutException;
import org.eclipse.jetty.websocket.core.server.WebSocketServerComponents;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.Authenticator;
import dev.wsproxy.Backend;
import dev.wsproxy.BackendTls;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.HealthCheck;
import dev.wsproxy.PlainHttp;
import dev.wsproxy.ProxySession;
import dev.wsproxy.TimeoutPolicy;

/**
 * The proxy as a Jetty {@link Handler.Wrapper}: upgrade requests on a route are proxied, plain HTTP on a route is
 * forwarded (or passed on), everything else goes to the wrapped handler.
 *
 * <h2>Handshake, backend first</h2>
 * {@link #handle} checks the client's handshake ({@code 400}, {@code 426}), refuses during shutdown ({@code 503}),
 * checks the Origin ({@code 403}) and asks the route's selector for a backend ({@code 503} when none), all before any
 * backend connection. Then it starts the backend handshake with {@link BackendHandshake} (the proxy's own, on the
 * backend client's connector) and returns: no thread waits. When the backend answers {@code 101}, the completion
 * thread upgrades the client with the backend's subprotocol through {@link ClientUpgrade} (what Jetty's
 * {@code Handshaker.upgradeRequest} does, without what the proxy has checked and decided by then); otherwise it
 * answers the client with the backend's own refusal, {@code 502} or {@code 504}. The backend leg exists before the
 * client's {@code 101} is written; if that write fails, the backend leg is closed. While the backend handshake is
 * pending, the client's socket is watched ({@link WebSocketEndPoints#watchClient}): a client that leaves ends it.
 *
 * <h2>WebSockets over HTTP/2</h2>
 * A server the proxy is mounted in may serve HTTP/2, and browsers then open WebSockets on the h2 connection with an
 * RFC 8441 extended {@code CONNECT} ({@link UpgradeChecks#isExtendedConnect}), looked for only in requests that are not
 * HTTP/1.1 upgrades. It takes the same path, with its own checks ({@link UpgradeChecks#checkExtendedConnect}, same
 * statuses) and the same hooks and backend leg (an HTTP/1.1 upgrade); the client gets {@code 200} instead of
 * {@code 101}, its session runs on the request's HTTP/2 stream ({@link ClientUpgrade#upgradeStream}), and while the
 * backend handshake is pending that stream is watched, not the socket, which carries other streams.
 *
 * <h2>Shared resources</h2>
 * The backend client shares the server's thread pool, scheduler and buffer pool, follows no redirects and keeps no
 * cookies; health checks use it through Jetty's {@link WebSocketCoreClient}, proxied sessions only through its
 * connector, resolver and TLS factory ({@link BackendHandshake}). Its resolver, which the plain HTTP forwarder's
 * client shares, looks each backend name up once at a time, and a few names at a time ({@link CoalescingResolver}).
 * Its WebSocket connections read on a selector thread ({@link WebSocketEndPoints}): the client leg's own when the
 * proxy's server connector serves it, otherwise one of the client connector's; handshake responses are handled there
 * too (read interest is {@code NON_BLOCKING}: the backend's {@code 101} upgrades the client on the thread that read
 * it). Its WebSocket connections use direct buffers only ({@link DirectBuffers}). Each leg reads with a 4 KiB buffer
 * until its first large frame, then with 64 KiB (large frames cost 2 to 3 times less CPU than with 4 KiB; see
 * {@link Relay} for why it starts small). Neither leg negotiates an extension of the proxy's own: permessage-deflate
 * is off on both legs, or, on a route that passes compression through, agreed by the client and the backend end to end
 * and relayed compressed ({@link DeflatePassThrough}).
 *
 * <h2>The server's stop</h2>
 * A server stopped with a stop timeout ({@code Server.setStopTimeout}) shuts its {@link Graceful} components down first
 * and waits for them up to that timeout: this handler refuses new upgrades with {@code 503} and closes every session
 * with {@code 1001} on both legs ({@link #shutdown}), as Jetty's own WebSocket container does; then the server stops
 * its connectors, which drops what is left. A server stopped without one drops every connection at once: the sessions
 * are named as the proxy's end ({@code shutdown}) first. Unlike {@link #stopProxy}, neither keeps the proxy stopped:
 * it serves again when the server starts again.
 */
public final class WebSocketProxyHandler extends Handler.Wrapper implements Graceful {

    private static final Logger LOG = LoggerFactory.getLogger(WebSocketProxyHandler.class);

    /**
     * Largest frame on both legs (larger frames are relayed in fragments of this size), and the input buffer of a leg
     * once it carries large frames.
     */
    static final int FRAME_BUFFER_SIZE = 64 * 1024;
    /** Input buffer of a leg until it carries a large frame (see {@link Relay}). */
    static final int INITIAL_INPUT_BUFFER_SIZE = 4 * 1024;
    /** The most of a refused {@code Origin} its reason quotes ({@link LogText#printable}). */
    static final int MAX_ORIGIN_IN_REASON = 100;
    /**
     * The longest reason listeners get, the {@code ...} of a cut included ({@link LogText#within}), escaped as
     * {@link LogText#printable} does: a backend's exception message may be long, and a backend or a client may write
     * what is not printable.
     */
    static final int MAX_REASON = 300;
    /** The mark of a request the standalone proxy passed on to its next handler, which took it ({@link #passOn}). */
    private static final String PASSED_ON_ATTRIBUTE = WebSocketProxyHandler.class.getName() + ".passedOn";
    /** The most of a backend's refusal body relayed to the client. */
    static final int MAX_REFUSAL_BODY = 64 * 1024;
    /**
     * Connections per backend address of the proxy's HTTP clients: the plain HTTP forwarder's ({@link HttpForwarder},
     * long polls hold one each) and the backend client's, which only health checks use. Proxied sessions connect
     * through {@link BackendHandshake}, their handshakes capped per backend by
     * {@link Route#maxPendingBackendHandshakes()}.
     */
    private static final int MAX_CONNECTIONS_PER_BACKEND = 4096;

    private final ProxyConfig config;
    /** How the backend resolver looks a name up ({@link CoalescingResolver}). */
    private final CoalescingResolver.LookUp lookUp;
    private final HttpForwarder httpForwarder;
    private final Set<Relay> relays = ConcurrentHashMap.newKeySet();
    /**
     * The authenticators' decisions still pending ({@link Authentication}): a stop answers them {@code 503}, as it does
     * the handshakes in flight to a backend ({@link #refusePendingAuthentications}).
     */
    private final Set<Authentication> authentications = ConcurrentHashMap.newKeySet();
    /**
     * Sessions that ended (deregistered from {@link #relays}) and whose close the listeners have not all been told
     * yet: {@link #drain} waits for them too, so that {@code stop()} returns after the last {@code onSessionClosed}.
     */
    private final AtomicInteger closesToReport = new AtomicInteger();
    private final AtomicLong sessionIds = new AtomicLong();
    private final Object drainLock = new Object();
    /**
     * When the drain of {@link #stopProxy} gives up on the sessions left ({@link NanoTime}), once a stop set it;
     * a later stop can only bring it earlier ({@link #cutDrain}). Guarded by {@link #drainLock}.
     */
    private long drainDeadline;
    private boolean drainDeadlineSet;
    /** Completed when the sessions have ended after the server's graceful {@link #shutdown}. Guarded by drainLock. */
    private @Nullable CompletableFuture<Void> gracefulStop;
    /** Tells the relays that the server stops, before it drops their connections ({@link #serverStopping}). */
    private final LifeCycle.Listener serverStop = new LifeCycle.Listener() {
        @Override
        public void lifeCycleStopping(LifeCycle event) {
            serverStopping();
        }
    };
    private volatile boolean draining;
    /**
     * Guards {@link #stopped}, {@link #draining}'s reset at start, and the start and stop of health checks and DNS
     * look-ups: a {@link #stopProxy} that runs while the server starts the handler must not let probes start after it.
     */
    private final Object lifecycleLock = new Object();
    /**
     * Set for good by {@link #stopProxy} ({@code WebSocketProxy.stop}): a restart of the server the handler is mounted
     * in then starts it refusing (no probes, no DNS look-ups), instead of proxying again.
     */
    private boolean stopped;
    private final List<Cidr> trustedProxies;
    private final @Nullable ConnectionLimits connectionLimits;
    private final @Nullable HandshakeRateLimiter rateLimiter;
    /** The leading bits of an IPv6 client address the per-address limits count a client by ({@link ClientKey}). */
    private final int perIpIpv6Prefix;
    private Scheduler.@Nullable Task rateSweeper;
    private final @Nullable HandshakeGuard handshakeGuard;
    private final List<HealthChecker> healthCheckers = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final List<DnsBackends> dnsSources = new java.util.concurrent.CopyOnWriteArrayList<>();
    private @Nullable WebSocketComponents components;
    private @Nullable HttpClient backendHttpClient;
    private @Nullable WebSocketCoreClient backendClient;
    private @Nullable BackendHandshake backendHandshake;
    private volatile SslContextFactory.@Nullable Client backendTlsFactory;
    /** Whether the handler runs in {@code WebSocketProxy.start()}'s own server, whose listener serves {@code tls}. */
    private volatile boolean standalone;

    public WebSocketProxyHandler(ProxyConfig config) {
        this(config, InetAddress::getAllByName);
    }

    /** With another look-up of backend names than the JVM's: tests block it, which the JVM's cannot be made to do. */
    WebSocketProxyHandler(ProxyConfig config, CoalescingResolver.LookUp lookUp) {
        this.config = config;
        this.lookUp = lookUp;
        this.httpForwarder = new HttpForwarder(this, MAX_CONNECTIONS_PER_BACKEND);
        Handler next = config.nextHandler();
        if (next != null) {
            setHandler(next);
        }
        installBean(httpForwarder);
        ProxyConfig.Limits limits = config.limits();
        this.trustedProxies = limits.trustedProxies().stream().map(Cidr::parse).toList();
        this.connectionLimits = limits.maxConnections() == Integer.MAX_VALUE
                && limits.maxConnectionsPerIp() == Integer.MAX_VALUE
                ? null : new ConnectionLimits(limits.maxConnectionsPerIp(), limits.maxConnections());
        this.rateLimiter = limits.handshakeRatePerIp() > 0 ? new HandshakeRateLimiter(limits.handshakeRatePerIp()) : null;
        this.perIpIpv6Prefix = limits.perIpIpv6Prefix();
        this.handshakeGuard = limits.handshakeTimeout().isZero() && limits.maxPendingHandshakes() == Integer.MAX_VALUE
                ? null : new HandshakeGuard(limits.handshakeTimeout(), limits.maxPendingHandshakes());
    }

    /**
     * Refuses a second server while the first runs the handler or still holds it in its tree (a server stopped and
     * started again would serve with it), naming that server. Also checks the next handler: proxies built from one
     * builder share it, and a Jetty handler belongs to one server
     * at a time. One that runs in another server is refused with a message naming it (Jetty would only say
     * {@code STARTED}); one that is stopped is managed here, started and stopped with this proxy, even if it was
     * running, and so left unmanaged by Jetty, when this proxy was built.
     */
    @Override
    public void setServer(Server server) {
        Server current = getServer();
        if (server != null && current != null && current != server
                && (isRunning() || current.getDescendants(WebSocketProxyHandler.class).contains(this))) {
            // One proxy, one server: its sessions, counters and backend client are one server's. Jetty alone said
            // STARTED while the first server ran; once it was stopped, the handler moved without a word, and the first
            // server, started again, served with a handler of the second's (500s once that one stopped).
            throw new IllegalStateException("the wsproxy handler is mounted in " + current + " (expected: one server "
                    + "per proxy: take it out of that server first, or mount a proxy of its own in each, such as "
                    + "proxy.toBuilder().build())");
        }
        Handler next = getHandler();
        if (next != null && server != null) {
            Server other = next.getServer();
            if (next.isRunning() && other != null && other != server) {
                throw new IllegalStateException("nextHandler " + next + " runs in another server (expected: one "
                        + "running proxy at a time; proxies built from one builder or with toBuilder() share it: stop "
                        + "the other one first, or give each proxy a handler of its own)");
            }
            if (next.isStopped() && !isManaged(next)) {
                manage(next);
            }
        }
        super.setServer(server);
        httpForwarder.setServer(server);
    }

    @Override
    protected void doStart() throws Exception {
        Server server = getServer();
        if (server == null) {
            throw new IllegalStateException("the wsproxy handler must be mounted in a Server");
        }
        WebSocketComponents shared = WebSocketServerComponents.ensureWebSocketComponents(server);
        LifeCycle.start(shared);
        components = shared;

        // Backend WebSocket reads run on the client's selector threads (see WebSocketEndPoints), and so do handshake
        // answers: BackendHandshake's for proxied sessions, and this client's for health checks (NON_BLOCKING: what
        // they call, Handshake, the client's upgrade, HealthChecker and listeners, never blocks).
        HttpClientTransportOverHTTP transport = new HttpClientTransportOverHTTP(WebSocketEndPoints.clientConnector());
        transport.setInvocationType(Invocable.InvocationType.NON_BLOCKING);
        HttpClient http = new HttpClient(transport);
        http.setName("wsproxy-backend");
        http.setExecutor(server.getThreadPool());
        http.setScheduler(server.getScheduler());
        http.setByteBufferPool(server.getByteBufferPool());
        http.setFollowRedirects(false);
        http.setHttpCookieStore(new HttpCookieStore.Empty());
        http.setUserAgentField(null);
        http.setMaxConnectionsPerDestination(MAX_CONNECTIONS_PER_BACKEND);
        http.setMaxRequestsQueuedPerDestination(MAX_CONNECTIONS_PER_BACKEND * 4);
        // Fixed at start: the TCP connect of every backend connection (proxied sessions, plain HTTP, probes) gives up
        // by then, whatever a session's policy says later; each session's own connect timeout is the proxy's timer.
        // The backend client's is at least the default, which health checks (whose probes have their own timeout) may
        // need; plain HTTP, whose client has one for all routes, gets the routes' longest (with that floor, it waited
        // 10 s for a backend that does not accept even on routes whose connect timeouts are all shorter).
        Duration longest = longestRouteConnectTimeout();
        http.setConnectTimeout(Math.max(longest.toMillis(), TimeoutPolicy.DEFAULT_CONNECT_TIMEOUT.toMillis()));
        httpForwarder.connectTimeout(longest); // started by super.doStart(), below
        // Every backend name goes through one resolver (handshakes, plain HTTP, health checks, DNS routes): one
        // look-up per name at a time, a few in all, so that a DNS stall blocks a few pool threads rather than one per
        // handshake or request (see CoalescingResolver).
        CoalescingResolver resolver = new CoalescingResolver(server.getThreadPool(), server.getScheduler(),
                http.getAddressResolutionTimeout(), lookUp);
        http.setSocketAddressResolver(resolver);
        httpForwarder.resolver(resolver);
        if (config.tls().server() != null && !standalone) {
            // Not refused: a builder may serve both ways (tests, a launcher), as listen(...) is ignored when mounted.
            // But a setting that reads as "encrypted" must not be dropped without a word.
            LOG.warn("tls({}) is ignored: the proxy is mounted in a server of yours, whose connectors decide TLS",
                    config.tls().server());
        }
        BackendTls backendTls = config.tls().backend();
        if (backendTls.isInsecure()) {
            LOG.warn("Backend TLS certificates are NOT verified ({}): anyone on the path to a wss:// backend can read "
                    + "and change its traffic. For development only.", backendTls);
        }
        // One factory per start for every backend connection (sessions, plain HTTP, probes): a custom supplier is
        // asked once, and a reload has one factory to reload. This client manages it unless it came started.
        SslContextFactory.Client tls = backendTls.newSslContextFactory();
        http.setSslContextFactory(tls);
        http.start();
        // A client certificate that backends will refuse, a trusted certificate past its dates.
        TlsStores.warnIfNotValid(tls, backendTls, LOG);
        backendTlsFactory = tls;
        httpForwarder.sslContextFactory(tls); // started by super.doStart(), below
        // Start installs a gzip decoder when none is set: remove it, to add no Accept-Encoding the client did not send.
        http.getContentDecoderFactories().clear();
        backendHttpClient = http;
        // The backend legs read and flush with direct buffers (see DirectBuffers); the client starts and stops these.
        WebSocketComponents backendComponents = new WebSocketComponents(null, null,
                new DirectBuffers(server.getByteBufferPool()), null, null, server.getThreadPool());
        WebSocketCoreClient client = new WebSocketCoreClient(http, backendComponents);
        client.start();
        backendClient = client;
        backendHandshake = new BackendHandshake(http, backendComponents, client.getClassLoader());
        synchronized (lifecycleLock) {
            draining = stopped;
        }
        synchronized (drainLock) {
            gracefulStop = null;
        }
        server.addEventListener(serverStop);
        super.doStart();
        HandshakeRateLimiter limiter = rateLimiter;
        if (limiter != null) {
            rateSweeper = server.getScheduler().schedule(this::sweepRates, 10, TimeUnit.SECONDS);
        }
        HandshakeGuard guard = handshakeGuard;
        if (guard != null) {
            // On the server's connectors, standalone or mounted: request heads are timed whichever handler gets them.
            // Standalone only, a head cut by the deadline gets an access line, as Jetty's refusals do.
            guard.install(server, standalone);
        }
        synchronized (lifecycleLock) {
            if (stopped) {
                LOG.info("wsproxy handler started for a stopped proxy: its routes answer 503 (routes {})",
                        config.routePrefixes());
                return;
            }
            for (Route route : config.routes()) {
                Route.Dns dns = route.dns();
                if (dns != null) {
                    DnsBackends source = new DnsBackends(route, dns, server.getScheduler(), resolver);
                    dnsSources.add(source);
                    source.start();
                }
                HealthCheck check = route.healthCheck();
                if (check != null) {
                    HealthChecker checker = new HealthChecker(route, check, client, http, server.getScheduler());
                    healthCheckers.add(checker);
                    checker.start();
                }
            }
        }
        LOG.info("wsproxy handler started (routes {})", config.routePrefixes());
    }

    @Override
    protected void doStop() throws Exception {
        draining = true;
        getServer().removeEventListener(serverStop);
        HandshakeGuard guard = handshakeGuard;
        if (guard != null) {
            guard.uninstall();
        }
        Scheduler.Task sweeper = rateSweeper;
        if (sweeper != null) {
            sweeper.cancel();
        }
        stopProbes();
        refusePendingAuthentications();
        for (Relay relay : relays) {
            relay.abort();
        }
        super.doStop();
        WebSocketCoreClient client = backendClient;
        if (client != null) {
            client.stop();
        }
        HttpClient http = backendHttpClient;
        if (http != null) {
            http.stop();
        }
        backendTlsFactory = null;
    }

    /** Tells the handler whether it runs in the proxy's own server ({@code WebSocketProxy.start()}). */
    public void standalone(boolean standalone) {
        this.standalone = standalone;
    }

    /** The factory of every backend connection, made at the last start; {@code null} while stopped. */
    public SslContextFactory.@Nullable Client backendTlsFactory() {
        return backendTlsFactory;
    }

    /** Stops the health checks and DNS look-ups; a probe or look-up in flight ends without effect. */
    private void stopProbes() {
        synchronized (lifecycleLock) {
            for (HealthChecker checker : healthCheckers) {
                checker.stop();
            }
            healthCheckers.clear();
            for (DnsBackends source : dnsSources) {
                source.stop();
            }
            dnsSources.clear();
        }
    }

    private void sweepRates() {
        HandshakeRateLimiter limiter = rateLimiter;
        if (limiter != null && isRunning()) {
            limiter.sweep();
            rateSweeper = getServer().getScheduler().schedule(this::sweepRates, 10, TimeUnit.SECONDS);
        }
    }

    @Override
    public boolean handle(Request request, Response response, Callback callback) throws Exception {
        Route route = config.match(Request.getPathInContext(request));
        if (route == null) {
            return passOn(request, response, callback);
        }
        // RFC 8441 (a WebSocket over HTTP/2) is looked for only in what is not an HTTP/1.1 upgrade.
        boolean extendedConnect = false;
        if (!UpgradeChecks.isUpgradeAttempt(request)) {
            extendedConnect = UpgradeChecks.isExtendedConnect(request);
            if (!extendedConnect) {
                if (route.plainHttp() == PlainHttp.NEXT_HANDLER) {
                    return passOn(request, response, callback);
                }
                return forwardHttp(request, response, callback, route);
            }
        }
        HandshakeRequestView view = new HandshakeRequestView(request, route,
                ClientIdentity.of(request, trustedProxies));
        UpgradeChecks.Refusal refusal = extendedConnect ? UpgradeChecks.checkExtendedConnect(request)
                : UpgradeChecks.check(request);
        if (refusal != null) {
            reject(view, response, callback, route, refusal.status(),
                    refusal.status() == HttpStatus.UPGRADE_REQUIRED_426 ? "bad_version" : "bad_request",
                    refusal.reason());
            return true;
        }
        if (draining) {
            reject(view, response, callback, route, HttpStatus.SERVICE_UNAVAILABLE_503, "shutdown",
                    "proxy is shutting down");
            return true;
        }
        // One key for both per-address limits, made once (two longs, no text): an IPv6 client counts with its block.
        ClientKey client = ClientKey.of(view.identity(), perIpIpv6Prefix);
        if (rateLimiter != null && !rateLimiter.tryAcquire(client)) {
            reject(view, response, callback, route, HttpStatus.TOO_MANY_REQUESTS_429, "rate_limited",
                    "handshake rate of " + countedAs(view.identity(), client) + " exceeded");
            return true;
        }
        String origin = request.getHeaders().get(HttpHeader.ORIGIN);
        boolean allowed;
        Object outer = UserCode.enter(route.originValidator());
        try {
            allowed = route.originValidator().isAllowed(origin, view);
        } catch (Throwable e) {
            LOG.warn("Origin validator {} failed", route.originValidator(), e);
            reject(view, response, callback, route, HttpStatus.INTERNAL_SERVER_ERROR_500, "origin_validator_failed",
                    "origin validator failed");
            return true;
        } finally {
            UserCode.exit(outer);
        }
        if (!allowed) {
            // The client's own text, cut and escaped (see LogText): the reason goes to listeners "for logs".
            reject(view, response, callback, route, HttpStatus.FORBIDDEN_403, "origin_refused",
                    "origin not allowed: " + LogText.printable(origin, MAX_ORIGIN_IN_REASON));
            return true;
        }
        ConnectionLimits.Permit permit = null;
        if (connectionLimits != null) {
            Object granted = connectionLimits.acquire(client);
            if (granted == ConnectionLimits.Refusal.PER_ADDRESS) {
                reject(view, response, callback, route, HttpStatus.TOO_MANY_REQUESTS_429, "too_many_sessions",
                        "too many sessions from " + countedAs(view.identity(), client));
                return true;
            }
            if (granted == ConnectionLimits.Refusal.TOTAL) {
                reject(view, response, callback, route, HttpStatus.SERVICE_UNAVAILABLE_503, "session_limit",
                        "session limit reached");
                return true;
            }
            permit = (ConnectionLimits.Permit) granted;
        }
        ConnectionLimits.Permit slot = permit;
        // The route's policy, read once for this session: the authenticator's deadline and the handshake's.
        Timeouts timeouts = Timeouts.copyOf(route.timeouts());
        boolean overHttp2 = extendedConnect;
        // One watch for both waits: an HTTP/2 stream's failure listener is added now, before either can miss a reset.
        ClientWatch watch = ClientWatch.of(request, overHttp2);
        Runnable handshake = () -> new Handshake(this, request, response, callback, route, timeouts, view, slot,
                overHttp2, watch).start();
        Authenticator authenticator = route.authenticator();
        if (authenticator == null) {
            handshake.run();
        } else {
            // A client that leaves while a later decision is pending is watched for, as during the backend handshake.
            Authentication.run(this, authenticator, route, timeouts.connectTimeout(), view, response, callback, permit,
                    watch, handshake);
        }
        return true;
    }

    /**
     * The client as a per-address refusal names it to listeners: its address, and for an IPv6 client counted with
     * others, the block it is counted with ({@code 2001:db8::2 in 2001:db8::/64}). Made only for a refusal.
     */
    private String countedAs(ClientIdentity identity, ClientKey client) {
        byte[] address = identity.clientBytes;
        return address == null || address.length == 4 || perIpIpv6Prefix == 128 ? identity.clientIp
                : identity.clientIp + " in " + client.ipv6Block(perIpIpv6Prefix);
    }

    /**
     * Asks the route's selector for a backend; answers the client and returns {@code null} when there is none: with
     * {@code 503} on a first attempt, or with the last failure ({@code lastStatus}) when failover ran out of backends.
     * {@code beforeRefusal} runs before such an answer is written (a client that retries at once must find its
     * connection slot free).
     */
    @Nullable Backend select(HandshakeRequestView view, Response response, Callback callback, Route route,
            int lastStatus, String lastToken, @Nullable String lastReason, Runnable beforeRefusal) {
        Backend backend;
        Object outer = UserCode.enter(route.selector());
        try {
            backend = route.selector().select(view);
        } catch (Throwable e) {
            LOG.warn("Backend selector {} failed", route.selector(), e);
            beforeRefusal.run();
            reject(view, response, callback, route, HttpStatus.INTERNAL_SERVER_ERROR_500, "selector_failed",
                    "backend selector failed");
            return null;
        } finally {
            UserCode.exit(outer);
        }
        if (backend == null) {
            beforeRefusal.run();
            if (lastStatus == 0) {
                // Busy only when there was no candidate: a selector that declined a candidate (a tenant it does not
                // serve) refused the session itself, whatever another backend's handshakes in flight.
                int cap = route.maxPendingBackendHandshakes();
                boolean busy = route.backends().anyBusy(cap)
                        && RouteBackends.candidates(route.backends().states(), view.tried, cap).isEmpty();
                reject(view, response, callback, route, HttpStatus.SERVICE_UNAVAILABLE_503,
                        busy ? "backends_busy" : "no_backend",
                        busy ? "every backend busy: " + cap + " handshakes pending to each" : "no backend available");
            } else {
                reject(view, response, callback, route, lastStatus, lastToken, lastReason);
            }
        }
        return backend;
    }

    /**
     * Passes a request the routes do not take to the next handler, if any. Standalone, a request the next handler
     * took is marked as such, for the server's error handler ({@link #tookRequest}): a request of the next handler's
     * is not the proxy's to log. The mark is taken off when the next handler does not take it, as Jetty then answers
     * {@code 404}, which the error handler logs. Mounted, the server's error handler is the user's: no mark.
     */
    private boolean passOn(Request request, Response response, Callback callback) throws Exception {
        if (!standalone || getHandler() == null) {
            return super.handle(request, response, callback);
        }
        request.setAttribute(PASSED_ON_ATTRIBUTE, Boolean.TRUE);
        boolean taken = super.handle(request, response, callback);
        if (!taken) {
            request.removeAttribute(PASSED_ON_ATTRIBUTE);
        }
        return taken;
    }

    /**
     * Whether the proxy's route handling took {@code request}, which logs it (every request on a route has its
     * {@link ClientIdentity} computed before anything else is done with it), or, standalone, the next handler did
     * ({@link #passOn}): the standalone server's error handler writes an access line for the other requests only.
     */
    boolean tookRequest(Request request) {
        return request.getAttribute(ClientIdentity.ATTRIBUTE) != null
                || request.getAttribute(PASSED_ON_ATTRIBUTE) != null;
    }

    /**
     * The client of a request the routes did not take, as an access line names it: behind trusted proxies the
     * forwarded client, when Jetty read the request's headers.
     */
    InetSocketAddress clientAddress(Request request) {
        return ClientIdentity.of(request, trustedProxies).clientAddress;
    }

    /**
     * Forwards a plain HTTP request on a route to a backend, after the route's authenticator (if any) allowed it: a
     * route that authenticates its WebSocket sessions also guards the plain HTTP it forwards (Socket.IO's polling
     * fallback, REST calls under the same prefix), with the same backend headers. {@code CONNECT} (a tunnel, whose
     * authority-form target Jetty maps to the path {@code /}) and {@code TRACE} (which would echo the proxy's headers
     * for the backend) get {@code 405}, and a transfer coding other than {@code chunked} {@code 501}, as from nginx.
     */
    private boolean forwardHttp(Request request, Response response, Callback callback, Route route) throws Exception {
        HandshakeRequestView view = new HandshakeRequestView(request, route,
                ClientIdentity.of(request, trustedProxies));
        if (draining) {
            reject(view, response, callback, route, HttpStatus.SERVICE_UNAVAILABLE_503, "shutdown",
                    "proxy is shutting down");
            return true;
        }
        String method = request.getMethod();
        if (!HttpTokens.isToken(method)) {
            // An HTTP/1 parser admits only a token, but HTTP/2's :method is any field value, spaces included, which
            // Jetty's client writes into the backend's request line as it is: "GET /admin?" on /api/x reached the
            // backend as "GET /ADMIN? /api/x HTTP/1.1", a target the route and the authenticator never saw.
            reject(view, response, callback, route, HttpStatus.BAD_REQUEST_400, "bad_request",
                    "method is not a token");
            return true;
        }
        if (HttpMethod.CONNECT.is(method) || HttpMethod.TRACE.is(method)) {
            reject(view, response, callback, route, HttpStatus.METHOD_NOT_ALLOWED_405, "method_not_allowed",
                    method + " is not forwarded");
            return true;
        }
        String ambiguity = UpgradeChecks.ambiguity(request);
        if (ambiguity != null) {
            reject(view, response, callback, route, HttpStatus.BAD_REQUEST_400, "bad_request", ambiguity);
            return true;
        }
        if (hasTransferCodingOtherThanChunked(request)) {
            // Jetty's parser takes "gzip, chunked" and undoes the chunking only: with Transfer-Encoding dropped
            // (hop-by-hop), the backend would get the coded bytes as the body itself. RFC 9112 section 6.1; nginx
            // answers 501 too.
            reject(view, response, callback, route, HttpStatus.NOT_IMPLEMENTED_501, "bad_request",
                    "transfer coding other than chunked");
            return true;
        }
        // The route's policy, read once for this request: the authenticator's deadline and the backend's idle timeout.
        Timeouts timeouts = Timeouts.copyOf(route.timeouts());
        Authenticator authenticator = route.authenticator();
        if (authenticator == null) {
            forwardAuthorized(request, response, callback, route, view, timeouts);
            return true;
        }
        // No connection slot to hold, and no watch of the socket, which may carry the request's body.
        Authentication.run(this, authenticator, route, timeouts.connectTimeout(), view, response, callback, null,
                null, () -> {
            try {
                forwardAuthorized(request, response, callback, route, view, timeouts);
            } catch (Exception | Error e) {
                couldNotForward(view, response, callback, e);
            }
        });
        return true;
    }

    /** Whether the request's {@code Transfer-Encoding} names a coding other than {@code chunked}. */
    private static boolean hasTransferCodingOtherThanChunked(Request request) {
        for (String coding : request.getHeaders().getCSV(HttpHeader.TRANSFER_ENCODING, false)) {
            if (!HttpHeaderValue.CHUNKED.is(coding.trim())) {
                return true;
            }
        }
        return false;
    }

    private void forwardAuthorized(Request request, Response response, Callback callback, Route route,
            HandshakeRequestView view, Timeouts timeouts) {
        ForwardedRequest forwarded = new ForwardedRequest(route, view, timeouts);
        request.setAttribute(HttpForwarder.FORWARDED_ATTRIBUTE, forwarded);
        // An HTTP/2 client that resets its stream while it waits ends the request to the backend at once.
        forwarded.watchClient(request);
        forwardAttempt(request, response, callback, forwarded, 0, AccessLog.NONE, null);
    }

    /**
     * Picks a backend for a plain HTTP request and forwards the request to it with {@link HttpForwarder}, as
     * {@link Handshake} does for an upgrade: after a failed connection, {@code lastStatus} is what the client gets
     * when no backend is left, and a backend this request already failed on ends the failover.
     */
    private void forwardAttempt(Request request, Response response, Callback callback, ForwardedRequest forwarded,
            int lastStatus, String lastToken, @Nullable String lastReason) {
        Route route = forwarded.route;
        HandshakeRequestView view = forwarded.view;
        view.selecting();
        Backend backend = select(view, response, callback, route, lastStatus, lastToken, lastReason, () -> { });
        if (backend == null) {
            return;
        }
        // As for an upgrade (Handshake.attempt): the state in the list the selector picked from, so that a backend
        // removed since is found removed, and a drained or removed one is turned away (a selector may pick from
        // backends(), which lists them).
        BackendState state = route.backends().stateOf(backend, view.seenBackends());
        if (!view.attempt(state)) {
            reject(view, response, callback, route, lastStatus, lastToken, lastReason);
            return;
        }
        forwarded.budget.attempt();
        if (state.state() == BackendStatus.State.DRAINING) {
            String reason = "backend draining";
            if (!forwardToAnother(request, response, callback, forwarded, HttpStatus.SERVICE_UNAVAILABLE_503,
                    "backend_draining", reason)) {
                reject(view, response, callback, route, HttpStatus.SERVICE_UNAVAILABLE_503, "backend_draining",
                        reason);
            }
            return;
        }
        URI target;
        try {
            target = backendUri(request, route, backend, false);
        } catch (IllegalArgumentException e) {
            reject(view, response, callback, route, HttpStatus.BAD_REQUEST_400, "bad_path",
                    "request path cannot be forwarded");
            return;
        }
        // As for an upgrade (Handshake.attempt): a backend on trial takes one request at a time, until one reaches
        // it (HttpForwarder ends the trial) or fails to.
        BackendState.Trial trial = state.tryTrial(httpForwarder.connectTimeout().toNanos()
                + route.passiveHealth().failTimeout().toNanos());
        if (trial == null) {
            String reason = "backend on trial: another request is testing " + backend.uri();
            if (!forwardToAnother(request, response, callback, forwarded, HttpStatus.SERVICE_UNAVAILABLE_503,
                    "backend_busy", reason)) {
                reject(view, response, callback, route, HttpStatus.SERVICE_UNAVAILABLE_503, "backend_busy", reason);
            }
            return;
        }
        forwarded.attempt(state, HttpURI.from(target), trial);
        try {
            httpForwarder.handle(request, response, callback);
        } catch (RuntimeException | Error e) {
            trial.release();
            throw e;
        }
    }

    /**
     * Forwards a plain HTTP request whose backend could not be connected to (nothing of the request sent, nothing of
     * its body read) to the next candidate, when the route's failover allows another attempt, there is a candidate
     * left and the proxy is not stopping; returns {@code false}, having done nothing, otherwise: the client then gets
     * the failure as without failover, not a refusal for want of a backend.
     */
    boolean forwardToAnother(Request request, Response response, Callback callback, ForwardedRequest forwarded,
            int status, String token, String reason) {
        Route route = forwarded.route;
        if (draining || !forwarded.budget.allowsAnother()
                || RouteBackends.candidates(route.backends().states(), forwarded.view.tried,
                        route.maxPendingBackendHandshakes()).isEmpty()) {
            return false;
        }
        try {
            forwardAttempt(request, response, callback, forwarded, status, token, reason);
        } catch (RuntimeException | Error e) {
            // On the thread of Jetty's client, which would only log it: the client would wait for its idle timeout.
            couldNotForward(forwarded.view, response, callback, e);
        }
        return true;
    }

    /** A plain HTTP request the proxy failed to forward: {@code 502}, or a failure once its response is committed. */
    private static void couldNotForward(HandshakeRequestView view, Response response, Callback callback, Throwable e) {
        LOG.warn("Could not forward {}", view, e);
        boolean committed = response.isCommitted();
        AccessLog.refused(view, committed ? response.getStatus() : HttpStatus.BAD_GATEWAY_502, "forward_failed");
        if (committed) {
            callback.failed(e);
        } else {
            Responses.error(response, callback, HttpStatus.BAD_GATEWAY_502);
        }
    }

    /**
     * Counts a failed connection to {@code state}'s backend for passive health ({@link RouteBackends#recordFailure}),
     * and tells the route's listener when it took the backend down. For upgrades and plain HTTP alike.
     */
    static void countConnectFailure(Route route, BackendState state) {
        BackendStatus.State previous = route.backends().recordFailure(state, route.passiveHealth().maxFails(),
                route.passiveHealth().failTimeout().toNanos());
        if (previous != null) {
            LOG.warn("Backend {} of route {} is down for {} after failed connections", state.backend(), route.prefix(),
                    route.passiveHealth().failTimeout());
            route.listener().onBackendStateChanged(route.prefix(), state, previous);
        }
    }

    /**
     * Refuses with {@code status}: reports it ({@link #refused}), then answers the client. {@code token} is the access
     * log's {@code reason}, one of the proxy's own words ({@code origin_refused}); {@code reason} the listeners'.
     */
    void reject(HandshakeRequestView view, Response response, Callback callback, Route route, int status,
            String token, @Nullable String reason) {
        reject(view, response, callback, route, status, token, reason, List.of());
    }

    /**
     * Refuses with {@code status}, adding {@code headers} (an authenticator's) to the answer while they fit in the
     * client's response head ({@link Responses#error(Response, Callback, int, List)}).
     */
    void reject(HandshakeRequestView view, Response response, Callback callback, Route route, int status,
            String token, @Nullable String reason, List<Map.Entry<String, String>> headers) {
        refused(view, route, status, token, reason);
        Responses.error(response, callback, status, headers);
    }

    /**
     * Reports a request on a route that got {@code status} from the proxy instead of a session or a backend's
     * response ({@code 499}: its client left first): to the route's listeners with {@code reason}, made printable and
     * short ({@link LogText#within}), and to the access log with {@code token}. Every request refused on a route
     * goes through here once, whoever answers the client (a backend's refusal is relayed, a client gone gets nothing),
     * but the plain HTTP requests {@link HttpForwarder} answers after their backend failed: those are logged when their
     * response completes.
     */
    void refused(HandshakeRequestView view, Route route, int status, String token, @Nullable String reason) {
        String printable = reason == null ? null : LogText.within(reason, MAX_REASON);
        if (LOG.isDebugEnabled()) {
            LOG.debug("Refused {}: {} ({})", view, status, printable);
        }
        route.listener().onHandshakeRejected(view, status, printable);
        AccessLog.refused(view, status, token);
    }

    /**
     * Maps the request onto a backend like nginx's {@code proxy_pass}: a backend without a path gets the client's
     * path as it was sent; a backend with a path gets that path in place of the route prefix. The query is kept, with
     * the characters RFC 3986 does not allow there encoded ({@link PathEncoding#encodeQueryKeepingEscapes}).
     */
    static URI backendUri(Request request, Route route, Backend backend, boolean websocket) {
        URI base = backend.uri();
        String scheme = websocket ? base.getScheme() : "wss".equals(base.getScheme()) ? "https" : "http";
        HttpURI uri = request.getHttpURI();
        String basePath = base.getRawPath();
        String path;
        if (basePath == null || basePath.isEmpty()) {
            path = uri.getPath() == null ? "/" : uri.getPath();
        } else {
            // The canonical path has its dot segments resolved, so the rest cannot climb out of the base path.
            String rest = Request.getPathInContext(request).substring(route.prefix().length());
            path = basePath + PathEncoding.encodeKeepingEscapes(rest);
        }
        String query = uri.getQuery();
        return URI.create(scheme + "://" + base.getRawAuthority() + path
                + (query == null ? "" : "?" + PathEncoding.encodeQueryKeepingEscapes(query)));
    }

    /** An idle expiry a leg's session ignores before the relay's listener is there (see {@link #legConfiguration}). */
    private static final Predicate<WebSocketTimeoutException> NOT_YET = timeout -> false;

    /**
     * The configuration of both legs' sessions. Each session also ignores idle expiry until the relay's own listener
     * decides ({@link Relay}, from the leg's {@code onOpen}): Jetty applies a session's idle timeout in its
     * {@code onOpen}, before the handler's, and checks it at once, so a timeout shorter than the time since the
     * connection's last byte (1 ms after a handshake on a cold JVM) closed the session in the middle of its opening:
     * the backend blamed for an "invalid 101: CLOSED" (502), or a client upgraded and then dropped without a close
     * frame, its session left in {@code sessions()}. Ignored, the expiry comes again one timeout later.
     */
    static Configuration.ConfigurationCustomizer legConfiguration(Timeouts timeouts) {
        Configuration.ConfigurationCustomizer configuration = new Configuration.ConfigurationCustomizer() {
            @Override
            public void customize(Configuration configurable) {
                super.customize(configurable);
                if (configurable instanceof WebSocketCoreSession session) {
                    session.addIdleTimeoutListener(NOT_YET);
                }
            }
        };
        configuration.setIdleTimeout(timeouts.connectionIdleTimeout());
        configuration.setInputBufferSize(INITIAL_INPUT_BUFFER_SIZE);
        configuration.setMaxFrameSize(FRAME_BUFFER_SIZE);
        configuration.setAutoFragment(true);
        return configuration;
    }

    /** The longest connect timeout of the routes (the default without routes); read when the handler starts. */
    private Duration longestRouteConnectTimeout() {
        Duration max = Duration.ZERO;
        for (Route route : config.routes()) {
            Duration connect = Timeouts.copyAtStart(route.timeouts(), "the backend clients' connect timeout")
                    .connectTimeout();
            if (connect.compareTo(max) > 0) {
                max = connect;
            }
        }
        return max.isZero() ? TimeoutPolicy.DEFAULT_CONNECT_TIMEOUT : max;
    }

    String nextSessionId() {
        return Long.toHexString(sessionIds.incrementAndGet());
    }

    boolean isDraining() {
        return draining;
    }

    /**
     * Keeps {@code authentication}, whose decision is pending, for a stop to answer; {@code false}, having kept
     * nothing, once the proxy is stopping (a drain may have looked already): it is then to be answered at once.
     */
    boolean authenticationPending(Authentication authentication) {
        return keepUnlessDraining(authentications, authentication);
    }

    /** {@code authentication}'s decision was acted on: nothing left for a stop to answer. */
    void authenticationEnded(Authentication authentication) {
        authentications.remove(authentication);
    }

    /**
     * Answers {@code 503} to every request whose authenticator has not decided yet, before the server's stop closes
     * their connections: a stop answered them nothing, and listeners heard {@code 499}, a client gone.
     */
    private void refusePendingAuthentications() {
        for (Authentication authentication : authentications) {
            authentication.shutdown();
        }
    }

    /** Registers a relay; returns {@code false} (and registers nothing) when the proxy is draining. */
    boolean register(Relay relay) {
        return keepUnlessDraining(relays, relay);
    }

    /**
     * Adds {@code item} to {@code set}, which a drain goes through once it has set {@link #draining}, unless the proxy
     * is draining: added first and checked after, so that a drain either finds the item or is seen here, never
     * neither. Returns {@code false}, the item not kept, when it is draining.
     */
    private <T> boolean keepUnlessDraining(Set<T> set, T item) {
        set.add(item);
        if (draining) {
            set.remove(item);
            return false;
        }
        return true;
    }

    /** The WebSocket components of the client legs; set while started. */
    WebSocketComponents components() {
        WebSocketComponents shared = components;
        if (shared == null) {
            throw new IllegalStateException("wsproxy handler not started");
        }
        return shared;
    }

    /** The backend handshake; set while started. */
    BackendHandshake backendHandshake() {
        BackendHandshake handshake = backendHandshake;
        if (handshake == null) {
            throw new IllegalStateException("wsproxy handler not started");
        }
        return handshake;
    }

    Scheduler scheduler() {
        return getServer().getScheduler();
    }

    /**
     * Deregisters a relay whose legs have both ended; {@code closeToReport} when it opened, and so has its close to
     * report, which it does next, on this thread or on the one reporting its open ({@link #onCloseReported} then).
     */
    void onRelayFinished(Relay relay, boolean closeToReport) {
        if (closeToReport) {
            // Counted before the relay leaves the set: a drain never finds the session in neither.
            closesToReport.incrementAndGet();
        }
        relays.remove(relay);
        wakeDrain();
    }

    /** A relay's close reached every listener (or threw): the drain need not wait for it any more. */
    void onCloseReported() {
        closesToReport.decrementAndGet();
        wakeDrain();
    }

    private void wakeDrain() {
        if (draining) {
            CompletableFuture<Void> ended = null;
            synchronized (drainLock) {
                drainLock.notifyAll();
                if (gracefulStop != null && relays.isEmpty() && closesToReport.get() == 0) {
                    ended = gracefulStop;
                }
            }
            if (ended != null) {
                ended.complete(null);
            }
        }
    }

    /**
     * The server's graceful stop (see "The server's stop" above): refuses new upgrades, closes every session with
     * {@code 1001} on both legs, and returns a future completed once they have ended and their closes have reached the
     * listeners. The server waits for it up to its stop timeout; it never waits on a thread of the proxy's.
     */
    @Override
    public CompletableFuture<Void> shutdown() {
        CompletableFuture<Void> ended;
        synchronized (drainLock) {
            if (gracefulStop == null) {
                gracefulStop = new CompletableFuture<>();
            }
            ended = gracefulStop;
        }
        draining = true;
        refusePendingAuthentications();
        for (Relay relay : relays) {
            relay.shutdown();
        }
        wakeDrain(); // no session open
        return ended;
    }

    @Override
    public boolean isShutdown() {
        return draining;
    }

    /**
     * The server is stopping: without a stop timeout it drops every connection without close frames, and the sessions
     * are named as the proxy's end ({@link Relay#serverStopping}); with one, {@link #shutdown} closes them first.
     */
    private void serverStopping() {
        // Before the connectors close: the requests whose authenticator has not decided get 503, not a dropped
        // connection that listeners heard of as 499, a client gone.
        refusePendingAuthentications();
        Server server = getServer();
        if (server == null || server.getStopTimeout() <= 0) {
            for (Relay relay : relays) {
                relay.serverStopping();
            }
        }
    }

    private Route routeNamed(String prefix) {
        Route route = config.route(prefix);
        if (route == null) {
            throw new IllegalArgumentException("route: " + prefix + " (expected: one of " + config.routePrefixes() + ")");
        }
        return route;
    }

    /** Replaces a route's backends at once; open sessions are not touched. */
    public void updateBackends(String prefix, List<Backend> backends) {
        List<Backend> checked = RouteSettings.checkedBackends(backends);
        Route route = routeNamed(prefix);
        Route.Dns dns = route.dns();
        if (dns != null) {
            // The next answer would replace the list without a word.
            throw new IllegalStateException("route " + prefix + " follows the DNS name of " + dns.template().uri()
                    + " (backendsFromDns): its backends are the name's addresses");
        }
        route.backends().replace(checked);
        LOG.info("Route {} now has backends {}", prefix, backends);
    }

    /**
     * Closes the connections that wait for a next request, and each as its exchange ends from now on
     * ({@link HandshakeGuard#closeIdle}); nothing without the guard ({@code handshakeTimeout} zero and no
     * {@code maxPendingHandshakes}).
     */
    public void closeIdleConnections() {
        HandshakeGuard guard = handshakeGuard;
        if (guard != null) {
            guard.closeIdle();
        }
    }

    /**
     * The backends of each route that has its own list, as they are now ({@link #updateBackends} included), by
     * prefix; a route that follows a DNS name is left out (its name is its setting).
     */
    public Map<String, List<Backend>> currentBackends() {
        Map<String, List<Backend>> current = new java.util.LinkedHashMap<>();
        for (Route route : config.routes()) {
            if (route.dns() == null) {
                current.put(route.prefix(), route.backends().backends());
            }
        }
        return current;
    }

    /** A live view of a route's backends. */
    public List<BackendStatus> backendStatus(String prefix) {
        return List.copyOf(routeNamed(prefix).backends().states());
    }

    /**
     * Stops new sessions to a backend (in every route that has it) and closes its open sessions with {@code 1001},
     * spread evenly across {@code window} so that their clients do not all reconnect at once. Handshakes still in
     * flight to it fail over to another backend at once. A backend removed from its route ({@code updateBackends}, a
     * DNS answer) is drained too while its sessions are open ({@link RouteBackends#drain}). An {@code updateBackends}
     * that lists the backend again within the window ends the drain: its sessions not closed yet stay open, and a
     * later drain of the backend closes them over its own window only ({@link BackendState#drainMark}). So does a
     * second drain without an {@code updateBackends} between: the latest call's window applies to the sessions not
     * closed yet, spread over it from now, and the closes the earlier drain still had to run are dropped.
     */
    public void drainBackend(Backend backend, Duration window) {
        boolean known = false;
        for (Route route : config.routes()) {
            known |= route.backends().drain(backend.uri());
        }
        if (!known) {
            throw new IllegalArgumentException("backend: " + backend
                    + " (expected: a backend of a route, or one removed from it with sessions still open)");
        }
        // A handshake still in flight to the backend fails over at once, as one arriving now would: its client has no
        // session to lose yet. Only open sessions are spread over the window.
        List<Relay> sessions = new java.util.ArrayList<>();
        int handshakes = 0;
        for (Relay relay : relays) {
            if (!relay.backend().uri().equals(backend.uri())) {
                continue;
            }
            if (relay.drainBeforeUpgrade()) {
                handshakes++;
            } else if (relay.proxyCloseReason() == null) {
                // One an earlier drain (or anything else of the proxy's) is closing already takes no step of this
                // window: the window is spread over the sessions it still has to close.
                sessions.add(relay);
            }
        }
        LOG.info("Draining {}: {} handshakes in flight fail over; closing {} sessions over {}", backend, handshakes,
                sessions.size(), window);
        long step = sessions.isEmpty() ? 0 : window.toNanos() / sessions.size();
        for (int i = 0; i < sessions.size(); i++) {
            Relay relay = sessions.get(i);
            // A close still to come is dropped when an updateBackends listing the backend has ended its drain
            // meanwhile: it went on closing the sessions left until the window was over. Dropped for good: a later
            // drain marks the backend anew, and its closes are its own (checking only that the backend was draining,
            // the first drain's closes came back and closed the sessions on its schedule too). Likewise when a later
            // drain of the backend, without an updateBackends between, marked it anew: the latest window applies (the
            // first drain's closes ran beside the second's, so a shorter second window closed the sessions no
            // earlier than the first one's schedule, and a longer one did not slow them). A backend outside the
            // route's list (a custom selector's), which no drain marks, has its sessions closed all the same.
            BackendState state = relay.backendState();
            Object mark = state.drainMark();
            Runnable close = () -> {
                if (mark == null || state.drainMark() == mark) {
                    relay.closeForDrain();
                }
            };
            if (i == 0) {
                close.run();
            } else {
                scheduler().schedule(close, step * i, TimeUnit.NANOSECONDS);
            }
        }
    }

    /**
     * What the proxy holds for sessions now, in all routes: all zero once every session has ended and every
     * handshake has finished (the tests' leak check).
     *
     * @param sessions registered sessions
     * @param connectionSlots client connection slots taken ({@code maxConnections}, {@code maxConnectionsPerIp})
     * @param activeBackendSessions sessions the backends' counts hold (least-connections, {@code BackendStatus})
     * @param pendingBackendHandshakes backend handshakes in flight
     */
    public record Held(int sessions, int connectionSlots, int activeBackendSessions, int pendingBackendHandshakes) {
    }

    /** What the proxy holds now; see {@link Held}. */
    public Held held() {
        int active = 0;
        int pending = 0;
        for (Route route : config.routes()) {
            for (BackendState state : route.backends().allStates()) {
                active += state.activeSessions();
                pending += state.pendingHandshakes();
            }
        }
        return new Held(relays.size(), connectionLimits == null ? 0 : connectionLimits.total(), active, pending);
    }

    /** The open sessions, including those whose handshake or close is in progress. */
    public List<ProxySession> sessions() {
        return List.copyOf(relays);
    }

    /**
     * Stops the proxy for good ({@code WebSocketProxy.stop}): stops its health checks and DNS look-ups, then
     * {@linkplain #drain drains} it. Mounted, the handler stays in its server, which goes on running; a later start of
     * that server (the application's {@code server.stop(); server.start()}) starts the handler still refusing, with no
     * probes or look-ups: the proxy was stopped, not its server, and only the server's own stop ends the handler's
     * resources (its backend client, the request-head guard).
     */
    public void stopProxy(Duration timeout) {
        synchronized (lifecycleLock) {
            stopped = true;
            draining = true;
        }
        stopProbes();
        drain(timeout);
    }

    /**
     * Refuses new upgrades, and those whose authenticator has not decided yet, with {@code 503}, closes every session
     * with {@code 1001} on both legs, and waits until they have ended and their closes have reached the listeners, or
     * {@code timeout} has passed; then drops the connections of the sessions left, and gives them (and listeners still
     * running) 100 ms more. A session's close is
     * reported on the thread that ended it: {@code stop()}'s own when its close completed at once, otherwise a Jetty
     * thread (the write of its close frame completed, its peer answered), which stop() must wait for too.
     */
    private void drain(Duration timeout) {
        draining = true;
        cutDrain(timeout);
        refusePendingAuthentications();
        for (Relay relay : relays) {
            relay.shutdown();
        }
        if (!awaitAllReported(null)) {
            LOG.info("Drain timeout: dropping {} sessions ({} closes still being reported to listeners)",
                    relays.size(), closesToReport.get());
            for (Relay relay : relays) {
                relay.abort();
            }
            // Aborting closes the sockets at once; the relays finish on Jetty's threads moments later.
            awaitAllReported(NanoTime.now() + TimeUnit.MILLISECONDS.toNanos(100));
        }
    }

    /**
     * Ends the drain of a stop {@code timeout} from now, unless it ends earlier already: {@code stop()} called again
     * while the first one drains ({@code stop(Duration.ZERO)} drops the sessions left at once), and the first stop's
     * own deadline. Returns at once.
     */
    public void cutDrain(Duration timeout) {
        long deadline = NanoTime.now() + timeout.toNanos();
        synchronized (drainLock) {
            if (!drainDeadlineSet || NanoTime.isBefore(deadline, drainDeadline)) {
                drainDeadline = deadline;
                drainDeadlineSet = true;
                drainLock.notifyAll();
            }
        }
    }

    /**
     * Waits until no relay is registered and every close was reported, or {@code deadline} (the drain's, which a
     * later stop may bring earlier, when {@code null}); returns which.
     */
    private boolean awaitAllReported(@Nullable Long deadline) {
        synchronized (drainLock) {
            while (!relays.isEmpty() || closesToReport.get() > 0) {
                long millis = TimeUnit.NANOSECONDS.toMillis((deadline != null ? deadline : drainDeadline)
                        - NanoTime.now());
                if (millis <= 0) {
                    return false;
                }
                try {
                    drainLock.wait(millis);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return relays.isEmpty() && closesToReport.get() == 0;
                }
            }
            return true;
        }
    }
}
