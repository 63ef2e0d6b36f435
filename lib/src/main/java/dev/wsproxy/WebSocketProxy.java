package dev.wsproxy;

import static java.util.Objects.requireNonNull;

import java.io.IOException;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;

import org.eclipse.jetty.http.HttpVersion;
import org.eclipse.jetty.server.ConnectionFactory;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.SecureRequestCustomizer;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.SslConnectionFactory;
import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.internal.Durations;
import dev.wsproxy.internal.PlainErrorHandler;
import dev.wsproxy.internal.ProxyConfig;
import dev.wsproxy.internal.TlsStores;
import dev.wsproxy.internal.UserCode;
import dev.wsproxy.internal.WebSocketEndPoints;
import dev.wsproxy.internal.WebSocketProxyHandler;

/**
 * A WebSocket reverse proxy, built by {@link ProxyBuilder}. Run it standalone with {@link #start()}, or mount
 * {@link #handler()} in your own Jetty {@code Server}.
 *
 * <p>Standalone:
 * <pre>{@code
 * try (WebSocketProxy proxy = ProxyBuilder.create()
 *         .listen("127.0.0.1", 8080)
 *         .route("/ws/", Backend.of("ws://127.0.0.1:3000"))
 *         .build()) {
 *     URI uri = proxy.start();
 *     ...
 * }
 * }</pre>
 *
 * <p>Mounted: requests on a route are proxied (plain HTTP too, unless the route's {@link PlainHttp} is
 * {@link PlainHttp#NEXT_HANDLER}); every other request goes to the wrapped handler.
 * <pre>{@code
 * Handler.Wrapper proxyHandler = proxy.handler();
 * proxyHandler.setHandler(myApplicationHandler);
 * server.setHandler(proxyHandler);
 * server.start();
 * }</pre>
 *
 * <p>For each upgrade request on a route the proxy checks the handshake, connects to a backend first, and upgrades the
 * client only when the backend answered {@code 101}, with the backend's subprotocol. A backend refusal reaches the
 * client with the backend's status; a backend that cannot be reached gives {@code 502}, one that does not answer in
 * time {@code 504}. Then frames flow both ways as they arrive, with backpressure, and close codes are relayed end to
 * end. The statuses and close codes are listed in the documentation ({@code docs/configuration.md}).
 *
 * <p>Thread-safe. {@link #start()} succeeds once at most (a start that failed may be tried again), and
 * {@link #stop(Duration)} acts once.
 */
public final class WebSocketProxy implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(WebSocketProxy.class);

    private final ProxyConfig config;
    private final ProxyBuilder builder;
    private final WebSocketProxyHandler handler;
    private @Nullable Server server;
    private @Nullable URI uri;
    /** The listener's TLS factory, which {@link #reloadTls()} reloads when {@link ServerTls#keyStore} made it. */
    private SslContextFactory.@Nullable Server servedTls;
    private boolean stopped;

    WebSocketProxy(ProxyConfig config, ProxyBuilder builder) {
        this.config = config;
        this.builder = builder;
        this.handler = new WebSocketProxyHandler(config);
    }

    /**
     * Starts a Jetty server of the proxy's own on the address set by {@link ProxyBuilder#listen(String, int)}.
     *
     * <p>Requests that no route (nor the {@linkplain ProxyBuilder#nextHandler next handler}) takes get {@code 404}.
     * The access log ({@code dev.wsproxy.access}) has a line for those, and for each request Jetty refuses before the
     * proxy runs (a bad or repeated {@code Host}, oversized headers, ...), as for the requests on a route.
     *
     * <p>A start that fails leaves nothing behind (no thread, socket or server), and the proxy can be started
     * again, once the port is free for instance.
     *
     * @return the bound URI, like {@code http://127.0.0.1:8080/}, with the real port when port 0 was asked for
     * @throws IOException if the address cannot be bound, a key or trust store of {@link ProxyBuilder#tls} or
     *         {@link ProxyBuilder#backendTls} cannot be read any more (each is read again on each start), or the
     *         server does not start
     * @throws IllegalStateException if the proxy was started, stopped or mounted before, or its
     *         {@linkplain ProxyBuilder#nextHandler next handler} runs in another proxy
     */
    public synchronized URI start() throws IOException {
        if (server != null || stopped || handler.getServer() != null) {
            throw new IllegalStateException("start(): the proxy was already started, stopped or mounted");
        }
        // Runs reads the relay resumes on the resuming thread (see WebSocketEndPoints).
        QueuedThreadPool threads = WebSocketEndPoints.threadPool();
        threads.setName("wsproxy");
        Server standalone = new Server(threads);
        standalone.setErrorHandler(new PlainErrorHandler(handler));
        HttpConfiguration http = new HttpConfiguration();
        http.setSendServerVersion(false);
        ServerTls tls = config.tls().server();
        // WebSocket reads run on the selector threads (see WebSocketEndPoints); HTTP keeps Jetty's defaults.
        ServerConnector connector;
        SslContextFactory.Server factory = null;
        if (tls == null) {
            connector = WebSocketEndPoints.serverConnector(standalone, new HttpConnectionFactory(http));
        } else {
            http.setSecureScheme("https");
            http.addCustomizer(new SecureRequestCustomizer());
            try {
                factory = tls.newSslContextFactory(); // reads a key store again: a renewed certificate is served
            } catch (IllegalArgumentException | IllegalStateException unusable) {
                throw new IOException("start(): " + unusable.getMessage(), unusable);
            }
            connector = WebSocketEndPoints.serverConnector(standalone, new SslConnectionFactory(factory,
                    HttpVersion.HTTP_1_1.asString()), new HttpConnectionFactory(http));
        }
        connector.setHost(config.host());
        connector.setPort(config.port());
        connector.setReusePort(config.reusePort());
        // The JVM's default backlog of 50 drops SYNs under a burst of connections (real clients then wait out a 1 s
        // retransmission); the kernel still caps it at net.core.somaxconn.
        connector.setAcceptQueueSize(1024);
        // A pending handshake waits for the backend's 101 on this connection: let the connect timeout decide first.
        connector.setIdleTimeout(config.connectorIdleTimeout().toMillis());
        standalone.addConnector(connector);
        standalone.setHandler(handler);
        handler.standalone(true);
        URI bound;
        try {
            standalone.start();
            // Before the server is published: a URI that cannot be made must not leave it running, unreachable.
            bound = new URI(tls == null ? "http" : "https", null, config.host(), connector.getLocalPort(), "/", null,
                    null);
        } catch (Exception e) {
            abandon(standalone, e);
            throw e instanceof IOException ? (IOException) e : new IOException("start(): " + e.getMessage(), e);
        }
        server = standalone;
        uri = bound;
        servedTls = factory;
        if (factory != null) {
            TlsStores.warnIfNotValid(factory, served(factory), LOG);
        }
        LOG.info("wsproxy listening on {} (routes {})", bound, config.routePrefixes());
        return bound;
    }

    /**
     * Reads the proxy's key and trust stores again and uses them from now on, without a restart: the key store of
     * {@link ServerTls#keyStore} (a renewed certificate, as Let's Encrypt issues every 60 to 90 days) and the file of
     * its {@link ServerTls#withClientCertificates} (a client CA added or replaced), and the files of
     * {@link BackendTls#trustStore} and {@link BackendTls#withClientCertificate}, for every backend connection
     * (WebSocket sessions, plain HTTP, health checks). New connections get them; open sessions, and backend
     * connections that plain HTTP keeps alive, go on undisturbed with the ones they began with.
     *
     * <p>Every file is read and checked first, as when it was configured (its password, a private key with its
     * certificate chain), and a TLS context is made from it; only when all of them pass are they handed to the running
     * factories. So a bad file (missing, half-written, another password) changes nothing: the proxy goes on with what
     * it had, and the exception names the file. Factories of your own ({@link ServerTls#custom},
     * {@link BackendTls#custom}) are not touched: reload them yourself, as {@link ServerTls#custom} says. Mounted, the
     * listener's TLS is your connector's, and the backend files alone are read.
     *
     * <pre>{@code
     * // after certbot renewed the certificate and the store was rebuilt:
     * proxy.reloadTls();
     * }</pre>
     *
     * <p>Thread-safe: call it from a file watcher, a scheduled task or an admin endpoint.
     *
     * @throws IllegalArgumentException if a file cannot be read or used, naming it; nothing was changed
     * @throws IllegalStateException if the proxy is not running: not started (nor its handler started in your server),
     *         or stopped
     */
    public synchronized void reloadTls() {
        if (stopped || !handler.isRunning()) {
            throw new IllegalStateException("reloadTls(): the proxy is not running");
        }
        ServerTls tls = config.tls().server();
        SslContextFactory.Server served = servedTls;
        Consumer<SslContextFactory> serverChange = tls == null || served == null ? null : tls.reloader();
        BackendTls backendTls = config.tls().backend();
        SslContextFactory.Client backend = handler.backendTlsFactory();
        Consumer<SslContextFactory> backendChange = backend == null ? null : backendTls.reloader();
        // Every file passed: only now does a running factory change.
        List<Object> reloaded = new ArrayList<>();
        if (serverChange != null) {
            TlsStores.reload(served, serverChange, tls);
            reloaded.add(tls);
            TlsStores.warnIfNotValid(served, tls, LOG);
        }
        if (backendChange != null) {
            TlsStores.reload(backend, backendChange, backendTls);
            reloaded.add(backendTls);
            TlsStores.warnIfNotValid(backend, backendTls, LOG);
        }
        if (!reloaded.isEmpty()) {
            LOG.info("TLS reloaded: {}", reloaded);
            return;
        }
        // Says why for each side: "custom factories" alone misled a proxy that has none (no TLS, the JVM's trust).
        String listener = tls == null ? "no TLS" : served == null ? "your connector's (mounted)"
                : tls + (tls.isCustom() ? ", yours to reload" : "");
        String backends = backendTls + (backendTls.isCustom() ? ", yours to reload"
                : backendTls.isInsecure() ? "" : " (the JVM's trust, read at its start)");
        LOG.info("TLS reloaded: no file to read (listener: {}; backends: {})", listener, backends);
    }

    /** What names a served certificate's file: a custom factory's key store path, or the configuration. */
    private Object served(SslContextFactory.Server factory) {
        String path = factory.getKeyStorePath();
        return path != null ? path : String.valueOf(config.tls().server());
    }

    /**
     * Stops a server whose start failed and takes the handler back from it: the handler keeps the server it was
     * mounted in, and {@link #start()} refuses a handler that has one (it would be mounted elsewhere), so without this
     * the proxy could never be started again, whatever the cause was (a port in use).
     */
    private void abandon(Server failed, Exception cause) {
        try {
            failed.stop();
        } catch (Exception suppressed) {
            cause.addSuppressed(suppressed);
        }
        handler.standalone(false);
        try {
            failed.setHandler((Handler) null);
            if (handler.getServer() != null) {
                handler.setServer(null);
            }
        } catch (RuntimeException suppressed) {
            cause.addSuppressed(suppressed);
        }
    }

    /**
     * Returns the URI the standalone server is bound to.
     *
     * @return the bound URI
     * @throws IllegalStateException if {@link #start()} has not succeeded
     */
    public synchronized URI uri() {
        if (uri == null) {
            throw new IllegalStateException("uri(): the proxy is not started");
        }
        return uri;
    }

    /**
     * Returns a Jetty {@code ServerConnector} for a {@code Server} you mount the proxy in, which relays WebSocket
     * frames on its selector threads, as the standalone server does: about a quarter less CPU per small message than a
     * plain {@code ServerConnector}, whose WebSocket reads are each handed to another thread. Its selectors also accept
     * connections themselves, instead of an acceptor thread handing each one over, and connect each session's
     * backend socket on its client socket's selector, which then relays both legs: it has up to one selector per
     * processor (as many as a plain connector and the backend client would have together), as nginx runs one worker
     * per core. HTTP requests, including
     * the upgrade requests themselves, are handled as on a plain connector. TLS works as usual: pass an
     * {@code SslConnectionFactory} before the {@code HttpConnectionFactory}; so does HTTP/2 (ALPN and an
     * {@code HTTP2ServerConnectionFactory}), whose WebSockets (see {@link #handler()}) are relayed by the h2
     * connection's threads rather than on the selector.
     *
     * <pre>{@code
     * Server server = new Server();
     * ServerConnector connector = WebSocketProxy.serverConnector(server, new HttpConnectionFactory());
     * connector.setPort(8080);
     * server.addConnector(connector);
     * server.setHandler(proxy.handler());
     * }</pre>
     *
     * <p>Listeners of a proxy run on those selector threads when a session ends, so they must not block (see
     * {@link ProxyListener}).
     *
     * @param server the server the connector belongs to
     * @param factories the connection factories, like those of {@code ServerConnector(Server, ConnectionFactory...)};
     *         none for plain HTTP/1.1
     * @return a new, unstarted connector
     */
    public static ServerConnector serverConnector(Server server, ConnectionFactory... factories) {
        requireNonNull(server, "server");
        requireNonNull(factories, "factories");
        return WebSocketEndPoints.serverConnector(server,
                factories.length == 0 ? new ConnectionFactory[] {new HttpConnectionFactory()} : factories);
    }

    /**
     * Returns a Jetty {@code QueuedThreadPool} for a {@code Server} you mount the proxy in, with
     * {@link #serverConnector}: the pool the standalone server uses. When a client leg of the proxy stopped reading
     * because the backend was slow to take its frames, and the backend's write completes, the leg's next read runs on
     * the thread that saw the write complete, instead of being handed to another thread: one thread wake-up less each
     * time. Every other task, the application's included, runs as on a plain {@code QueuedThreadPool}.
     *
     * <pre>{@code
     * Server server = new Server(WebSocketProxy.threadPool());
     * }</pre>
     *
     * @return a new, unstarted pool, to configure as any {@code QueuedThreadPool}
     */
    public static QueuedThreadPool threadPool() {
        return WebSocketEndPoints.threadPool();
    }

    /**
     * Returns the proxy as a Jetty handler to mount in your own {@code Server}. Requests on a route are proxied:
     * upgrades, and plain HTTP unless the route's {@link PlainHttp} is {@link PlainHttp#NEXT_HANDLER}; other requests
     * go to the wrapped handler (set with {@link Handler.Wrapper#setHandler(Handler)} or
     * {@link ProxyBuilder#nextHandler(Handler)}). The same instance is returned on every call.
     *
     * <p>It is mounted in one server: mounting it in another one ({@code setHandler}, directly or through a wrapper)
     * throws {@link IllegalStateException}, naming the first, while the first runs it or still holds it, stopped or
     * not (started again, it would serve with it). Take it out of the first server ({@code setHandler(null)} there, or
     * the wrapper's) to move it, or give each server a proxy of its own ({@code toBuilder().build()}).
     *
     * <p>A server that serves HTTP/2 also gets WebSockets over HTTP/2 (RFC 8441): Jetty's HTTP/2 connection factories
     * offer them by default, and browsers then open theirs on the h2 connection with an extended {@code CONNECT}. They
     * are proxied as HTTP/1.1 upgrades are (the same checks, hooks, refusals and events, the backend connected first
     * with an HTTP/1.1 upgrade); the client is answered {@code 200} instead of {@code 101}, and each WebSocket is a
     * stream of the connection, held back by HTTP/2 flow control. {@code setConnectProtocolEnabled(false)} on the
     * {@code HTTP2ServerConnectionFactory} keeps browsers on HTTP/1.1 for WebSockets instead.
     *
     * <p>The access log ({@code dev.wsproxy.access}) has a line for each request on a route. What Jetty refuses before
     * any handler runs (a bad or repeated {@code Host}, oversized headers, ...) and the {@code 404}s of your server
     * are your server's to answer (its error handler) and to log: set a {@code RequestLog} on it.
     *
     * <p>When your server stops with a stop timeout ({@code server.setStopTimeout(...)}), the proxy takes part in its
     * graceful shutdown as Jetty's own WebSocket container does: it refuses new upgrades with {@code 503}, sends
     * {@code 1001 Going Away} to both legs of every session, and the server waits for them to end, up to that timeout,
     * before it closes its connectors. Without a stop timeout the server drops every connection at once. Either way the
     * requests whose {@link Authenticator} has not decided yet are answered {@code 503} first, and the proxy serves
     * again when the server starts again; {@link #stop(Duration)} stops it for good.
     *
     * @return the proxy handler
     */
    public Handler.Wrapper handler() {
        return handler;
    }

    /**
     * Returns the sessions open now, including those whose close handshake is in progress and those still in their
     * backend handshake (their {@link ProxySession#openedAt()} is {@link java.time.Instant#EPOCH} until the client is
     * upgraded, and their subprotocol {@code null} until the backend's {@code 101} is accepted).
     *
     * @return a snapshot of the open sessions
     */
    public List<ProxySession> sessions() {
        return handler.sessions();
    }

    /**
     * Replaces the backends of a route at once. Sessions already open are not touched, whatever their backend; new
     * sessions use the new list. Backends that stay keep their counters and health, and stop draining.
     *
     * <p>It works whether the proxy runs or not, as {@link #backendStatus} and {@link #drain} do (only
     * {@link #reloadTls()} needs a running proxy): before {@link #start()}, or before your server starts
     * {@link #handler()}, it sets the list the proxy starts with (from service discovery, say); once the proxy is
     * stopped, it sets the list {@link #toBuilder()} carries to a successor.
     *
     * @param route the prefix of a route, as given to {@link ProxyBuilder#route}
     * @param backends one or more backends, each URI once, however spelled (see {@link ProxyBuilder#route})
     * @throws IllegalArgumentException if there is no such route, the list is empty or has a URI twice
     * @throws IllegalStateException if the route follows a DNS name ({@link RouteBuilder#backendsFromDns}): each
     *         answer would replace the list
     */
    public void updateBackends(String route, List<Backend> backends) {
        requireNonNull(route, "route");
        requireNonNull(backends, "backends");
        handler.updateBackends(route, backends);
    }

    /**
     * Returns a live view of a route's backends: state (up, down, draining), active and total sessions, backend
     * handshakes in flight, recent failures. It works whether the proxy runs or not: before it starts, every backend
     * as built or updated, with no sessions; once it is stopped, the totals it ended with, and no active session.
     *
     * @param route the prefix of a route
     * @return one status per backend, in configuration order
     * @throws IllegalArgumentException if there is no such route
     */
    public List<BackendStatus> backendStatus(String route) {
        requireNonNull(route, "route");
        return handler.backendStatus(route);
    }

    /**
     * Drains a backend: it gets no new sessions (in every route that has it), and its open sessions are closed with
     * {@code 1001 Going Away} on both legs, spread evenly across {@code window} so that their clients do not all
     * reconnect at the same moment. A handshake still waiting for the backend's {@code 101} is given up at once and
     * fails over to another backend, as a handshake arriving after the drain does ({@code 503} when there is none).
     * {@link #updateBackends} with the backend in the list ends the draining, within the window too: the sessions
     * not closed yet stay open, and a later {@code drain} of the backend closes them over its own window only; a new
     * answer of a {@link RouteBuilder#backendsFromDns} route does not.
     *
     * <p>Called again for a backend already draining, {@code drain} applies its own window in place of the earlier
     * one: the sessions not closed yet are spread across it from now (one of them at once), and the closes the earlier
     * call still had to run are dropped. A shorter window speeds the closes up ({@link Duration#ZERO} closes the
     * sessions left at once), a longer one slows them down.
     *
     * <p>A backend already removed from its route ({@link #updateBackends}, a DNS answer) keeps its open sessions; it
     * can be drained as long as it has some: they are closed the same way, and if a DNS answer brings the backend back
     * meanwhile, it comes back draining.
     *
     * <p>It does not throw on a proxy that is not running, so that a drain racing a stop is no error: before the proxy
     * starts, it takes the backend out of rotation from the first session on (until {@link #updateBackends} lists it
     * again); once the proxy is stopped, there is no session to close, and it only marks the backend draining in
     * {@link #backendStatus}, which {@link #toBuilder()} does not carry.
     *
     * @param backend a backend of some route, or one removed from a route whose sessions are still open (matched by
     *        URI)
     * @param window how long to take closing its sessions; {@link Duration#ZERO} closes them all at once
     * @throws IllegalArgumentException if no route has this backend, nor had it with sessions still open
     */
    public void drain(Backend backend, Duration window) {
        requireNonNull(backend, "backend");
        requireNonNull(window, "window");
        if (window.isNegative()) {
            throw new IllegalArgumentException("window: " + window + " (expected: >= 0)");
        }
        handler.drainBackend(backend, Durations.stored(window));
    }

    /**
     * Stops the proxy: new upgrade requests get {@code 503}, open sessions are closed with {@code 1001 Going Away} on
     * both legs, and sessions still open when {@code drain} has passed are dropped. Its health checks and DNS look-ups
     * stop at once. Then the standalone server, if any, stops. A standalone proxy built with {@link
     * ProxyBuilder#reusePort(boolean) reusePort(true)} first closes its listening socket, so that new connections go to
     * a successor bound to the same address rather than to its {@code 503}.
     *
     * <p>A stopped proxy stays stopped: {@link #start()} refuses it. Mounted, its handler stays in your server, which
     * goes on running, and keeps refusing for good, also after your server is stopped and started again: upgrades
     * (and plain HTTP it would forward) on its routes get {@code 503}, every other request goes to the next handler,
     * and no probe or look-up runs. To proxy again, mount the handler of a new proxy, such as
     * {@code toBuilder().build()}.
     *
     * <p>When {@code stop} returns, every session reported to {@link ProxyListener#onSessionOpened} has been reported
     * to {@link ProxyListener#onSessionClosed} on every listener, once, and they have returned: metrics read or an
     * audit log flushed after {@code stop} count every session. A session's close is reported on the thread that
     * ended it: this one when its close completed at once, a Jetty thread when it completed later (its peer read the
     * close frame late); {@code stop} waits for those reports as it waits for the sessions, until {@code drain} has
     * passed, then drops the sessions left and waits 100 ms more. A listener still running by then is no longer waited
     * for (it reports after {@code stop} returned), so a listener that blocks on another thread holds {@code stop} for
     * {@code drain} plus 100 ms at most; one that blocks on this thread holds it as long as it blocks, and so does one
     * that blocks a selector thread of the standalone server, which Jetty's stop waits for (listeners must not block:
     * see {@link ProxyListener}).
     *
     * <p>Called again while a stop drains, from another thread, {@code stop} ends that drain {@code drain} from now if
     * that is earlier than its own deadline, and returns at once; the first call then returns as above, its sessions
     * left dropped at the earlier deadline. A second Ctrl-C of an application that drains on the first:
     * {@code stop(Duration.ZERO)} drops the sessions still open, and the first {@code stop} returns moments later,
     * every close reported. Called again once the proxy is stopped, it does nothing.
     *
     * <p>A {@link ProxyListener} may not stop the proxy from its callback, nor may the other hooks the proxy calls on
     * its threads: an {@link OriginValidator}, an {@link Authenticator}'s {@code authenticate}, a
     * {@link BackendSelector} (its {@code select}, with a {@link BackendSelector#consistentHash} key, and its
     * {@code onSessionOpened} and {@code onSessionClosed}), a {@link TimeoutPolicy}. The stop would wait for that very
     * call to return: standalone, for ever, as Jetty's stop waits for the selector thread it runs on; mounted, for the
     * whole drain when the call reports a session's open or close, which the drain waits for. Such a stop throws, and
     * the hook fails as when it throws anything else (a validator's, an authenticator's or a selector's
     * {@code select}'s handshake gets {@code 500}, a policy's session the defaults, a listener's or a selector's
     * session report is logged and the session goes on). Hand the stop to another thread:
     * {@code executor.execute(() -> proxy.close())}. An authenticator's stage completed later runs on a thread of
     * yours, from which a stop is fine; so is a stop of this proxy from another proxy's hooks, which it does not wait
     * for (a hook object shared by both counts as this proxy's).
     *
     * <p>Standalone, neither may the {@linkplain ProxyBuilder#nextHandler next handler}, nor anything else on a thread
     * of the proxy's own server (a callback of that handler's): the server's stop waits for each of its selector
     * threads, on which Jetty runs a handler it takes for non-blocking ({@code Handler.Abstract.NonBlocking}), so such
     * a stop waited for ever (and a blocking handler stopped the server under its own request, whose answer was lost).
     * That stop throws, and the proxy goes on running: hand it to another thread, as above, and answer the request.
     *
     * @param drain how long to wait for sessions to finish their close handshake and for their closes to reach the
     *        listeners; {@link Duration#ZERO} drops them
     * @throws IllegalArgumentException if {@code drain} is negative
     * @throws IllegalStateException if called from a {@link ProxyListener}'s callback or another of this proxy's
     *         hooks (see above) while the proxy runs (the hook fails, and the proxy goes on running), or, standalone,
     *         from a thread of its own server, such as its next handler's (the proxy goes on running)
     */
    public void stop(Duration drain) {
        requireNonNull(drain, "drain");
        if (drain.isNegative()) {
            throw new IllegalArgumentException("drain: " + drain + " (expected: >= 0)");
        }
        Server toStop;
        synchronized (this) {
            if (stopped) {
                handler.cutDrain(Durations.stored(drain));
                return;
            }
            String hook = UserCode.runningIn(config.routes());
            if (hook != null) {
                // It waited for the hook's own call to return: standalone, for ever, on Jetty's stop of the selector
                // that runs it; mounted, a listener or a selector's onSessionOpened/Closed, for the whole drain.
                throw new IllegalStateException("stop(): called from " + hook + ", which the stop waits for "
                        + "(expected: a call from another thread, such as an executor of yours)");
            }
            if (server != null && WebSocketEndPoints.runsOn(server.getThreadPool())) {
                // Jetty's stop of the server waits for each selector's thread: on one, for ever. A next handler runs on
                // one whenever Jetty thinks it does not block (Handler.Abstract.NonBlocking), and so may its callbacks.
                throw new IllegalStateException("stop(): called from a thread of the proxy's own server (its next "
                        + "handler, or a callback of it), which the server's stop waits for (expected: a call from "
                        + "another thread, such as an executor of yours)");
            }
            stopped = true;
            toStop = server;
        }
        if (toStop != null && config.reusePort()) {
            // A successor bound to the address takes every new connection from now on (ProxyBuilder.reusePort).
            List<CompletableFuture<Void>> closing = new ArrayList<>();
            for (Connector connector : toStop.getConnectors()) {
                closing.add(WebSocketEndPoints.closeListener(connector));
            }
            awaitListenersClosed(closing);
            // And the connections kept alive for a next request: it goes to the successor too, not to a 503.
            handler.closeIdleConnections();
        }
        handler.stopProxy(Durations.stored(drain));
        if (toStop != null) {
            try {
                toStop.stop();
            } catch (Exception e) {
                LOG.warn("Failed to stop the standalone server", e);
            }
        }
    }

    /**
     * Waits, a few seconds at most, until the listening sockets are closed: each is closed on its selector, and one
     * still open when the drain began accepted connections the stopping proxy answered {@code 503} (seen on a busy
     * machine). A selector that does not get to it in time only lets a few connections reach this proxy.
     */
    private static void awaitListenersClosed(List<CompletableFuture<Void>> closing) {
        try {
            CompletableFuture.allOf(closing.toArray(CompletableFuture[]::new)).get(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException | TimeoutException e) {
            LOG.debug("Listening sockets not closed before the drain", e);
        }
    }

    /**
     * Stops the proxy with the drain timeout of {@link ProxyBuilder#drainTimeout(Duration)}.
     *
     * @throws IllegalStateException if called from a {@link ProxyListener}'s callback or another of the proxy's hooks
     *         while the proxy runs, or from a thread of its standalone server (see {@link #stop(Duration)})
     */
    @Override
    public void close() {
        stop(config.drainTimeout());
    }

    /**
     * Returns a builder with this proxy's settings, every one of them, to derive a variant, or to start the proxy
     * again once it is stopped ({@code proxy.toBuilder().build().start()}). Each route has its backends as they are
     * now: as {@link #updateBackends} last left them, or as built. A route that follows a DNS name
     * ({@link RouteBuilder#backendsFromDns}) keeps the name, which the new proxy resolves afresh. What the proxy
     * learned at runtime is not a setting: the new proxy's backends start {@code UP}, with no sessions, failures or
     * draining. Key and trust stores given by path ({@link ServerTls#keyStore}, {@link BackendTls#trustStore},
     * {@link BackendTls#withClientCertificate}) are read again when the new proxy starts.
     *
     * @return a new builder
     */
    public ProxyBuilder toBuilder() {
        return builder.copy().withBackends(handler.currentBackends());
    }
}
