package dev.wsproxy.internal;

import java.io.EOFException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeoutException;

import org.eclipse.jetty.client.HttpClient;
import org.eclipse.jetty.http.HttpException;
import org.eclipse.jetty.http.HttpField;
import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpParser;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.http.HttpVersion;
import org.eclipse.jetty.io.AbstractConnection;
import org.eclipse.jetty.io.ByteBufferPool;
import org.eclipse.jetty.io.ClientConnectionFactory;
import org.eclipse.jetty.io.ClientConnector;
import org.eclipse.jetty.io.Connection;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.io.ManagedSelector;
import org.eclipse.jetty.io.RetainableByteBuffer;
import org.eclipse.jetty.io.SelectorManager;
import org.eclipse.jetty.io.Transport;
import org.eclipse.jetty.io.ssl.SslConnection;
import org.eclipse.jetty.io.ssl.SslHandshakeListener;
import org.eclipse.jetty.util.BufferUtil;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.IO;
import org.eclipse.jetty.util.Promise;
import org.eclipse.jetty.util.SocketAddressResolver;
import org.eclipse.jetty.util.thread.Invocable;
import org.eclipse.jetty.util.thread.Scheduler;
import org.eclipse.jetty.websocket.core.Behavior;
import org.eclipse.jetty.websocket.core.Configuration;
import org.eclipse.jetty.websocket.core.CoreSession;
import org.eclipse.jetty.websocket.core.FrameHandler;
import org.eclipse.jetty.websocket.core.Negotiated;
import org.eclipse.jetty.websocket.core.WebSocketComponents;
import org.eclipse.jetty.websocket.core.WebSocketConnection;
import org.eclipse.jetty.websocket.core.WebSocketConstants;
import org.eclipse.jetty.websocket.core.WebSocketCoreSession;
import org.eclipse.jetty.websocket.core.exception.UpgradeException;
import org.eclipse.jetty.websocket.core.util.WebSocketUtils;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The backend leg's WebSocket handshake, written for the proxy directly on Jetty's {@link ClientConnector}: one GET
 * upgrade request out, one response parsed with Jetty's {@link HttpParser}, then the end point is upgraded to a
 * client-side {@link WebSocketConnection}.
 *
 * <h2>Why</h2>
 * Jetty's {@code WebSocketCoreClient} runs each handshake as a full {@code HttpClient} exchange: request, conversation
 * and exchange objects, a destination lookup and its connection pool, sender and receiver, response listeners, the
 * upgrade protocol handler and {@code HttpUpgraderOverHTTP}, {@code CoreClientUpgradeRequest} with its listeners and
 * stream-based extension parsing, the URI parsed again, and a {@code new SecureRandom()} per connection. In a profile
 * of a handshake storm (connect, one echo, close, repeated) that machinery was about 26 % of the proxy's CPU per
 * cycle. The proxy needs none of it: it opens one connection per handshake, never reuses it for HTTP, offers no
 * extensions of its own and relays any refusal as it is.
 *
 * <h2>What is sent</h2>
 * {@code GET} with the backend URI's path and query, {@code Host} (the URI's authority unless the forwarded headers
 * carry the client's), the headers the caller built (forwarded and authenticator headers, one {@code
 * Sec-WebSocket-Protocol} per offered subprotocol), then, replacing any of the same name as Jetty's client does: {@code
 * Upgrade: websocket}, {@code Connection: Upgrade}, a random {@code Sec-WebSocket-Key}, {@code Sec-WebSocket-Version:
 * 13}, {@code Pragma} and {@code Cache-Control: no-cache}. No {@code Expect}, no {@code User-Agent}, no {@code
 * Accept-Encoding}, and no extensions but the client's {@code permessage-deflate} offers when the route passes
 * compression through (the caller's headers carry them). CR, LF and NUL in header names and values are replaced, as
 * Jetty's generator does.
 *
 * <h2>What is validated</h2>
 * What Jetty's client validates, and what the proxy added on top: status {@code 101}; {@code Upgrade} names
 * {@code websocket}; {@code Connection} contains {@code upgrade}; {@code Sec-WebSocket-Accept} is the hash of the key
 * sent; at most one subprotocol, one of those offered; no extension, or, when the route passes compression through,
 * one {@code permessage-deflate} element that an offer allows ({@link DeflatePassThrough}). Interim responses
 * ({@code 100}, {@code 103}...) are skipped. The response head is limited to {@link #MAX_RESPONSE_HEAD} bytes.
 *
 * <h2>Outcomes</h2>
 * The future completes with the backend {@link CoreSession} after {@code endPoint.upgrade(...)}: the bytes the backend
 * sent right after its {@code 101} are handed to the WebSocket connection. Anything else completes it exceptionally,
 * and the {@link BackendResponse} tells a refusal (a complete response head that is not {@code 101}: its status,
 * headers and up to the cap of its body, whether framed by length, chunks or EOF) from an invalid {@code 101} (status
 * {@code 101}) and from a failure before any response (status 0: DNS, connect, TLS, closed response). A response the
 * parser rejects after an error status line (a TLS backend spoken to in plain text answers its own {@code 400}, then
 * bytes the parser refuses; a head over the limit) is relayed with that status as far as it came; any other garbled
 * answer counts as no answer ({@code 502}). Of a refusal's headers, the client gets those that fit in the response
 * head its connection can write, 16 KiB by default ({@link Responses#relay}); the others are dropped.
 * Completing the future from outside (the proxy's timer, a cancellation on shutdown) closes the connection, or closes
 * it as soon as a connect in progress opens it.
 *
 * <h2>Threads</h2>
 * The response is read on the selector thread of the backend socket ({@code NON_BLOCKING} read interest), which then
 * runs the caller's completion: the proxy's completions never block. That selector is the client leg's when the
 * caller names its socket and one of the proxy's server connectors serves it ({@link WebSocketEndPoints}, one
 * selector per session), otherwise one of the client connector's. Names are resolved by the {@code HttpClient}'s
 * resolver, the proxy's {@link CoalescingResolver}: one look-up per name at a time, which every handshake to that
 * name waits for without a thread, a few look-ups in all on the pool; a handshake that ends before the answer (its
 * timer, its client leaving) withdraws from it. IP literals are not resolved. Nothing waits.
 */
final class BackendHandshake {

    private static final Logger LOG = LoggerFactory.getLogger(BackendHandshake.class);

    /**
     * The largest response head accepted (Jetty's client sets no limit). More than the client leg writes, 16 KiB by
     * default: a refusal's headers that do not fit there are dropped ({@link Responses#relay}).
     */
    static final int MAX_RESPONSE_HEAD = 64 * 1024;
    private static final String ATTEMPT_CONTEXT_KEY = BackendHandshake.class.getName() + ".attempt";

    private final ClientConnector connector;
    private final SocketAddressResolver resolver;
    private final ClientConnectionFactory plain;
    private final ClientConnectionFactory tls;
    private final WebSocketComponents components;
    private final Executor executor;
    private final Scheduler scheduler;
    private final ByteBufferPool pool;
    private final int responseBufferSize;
    private final @Nullable ClassLoader classLoader;
    /** Masks for every backend connection: one strong generator per proxy, drawn in blocks (see MaskKeys). */
    private final Random masks = new MaskKeys();
    private final org.eclipse.jetty.http.HttpCompliance compliance;

    /**
     * @param http the started backend client: its connector (selectors, TLS factory), resolver, executor, scheduler
     * @param components the backend legs' WebSocket components (direct buffer pool)
     */
    BackendHandshake(HttpClient http, WebSocketComponents components, @Nullable ClassLoader classLoader) {
        this.connector = http.getClientConnector();
        this.resolver = http.getSocketAddressResolver();
        this.components = components;
        this.executor = http.getExecutor();
        this.scheduler = http.getScheduler();
        this.pool = components.getByteBufferPool();
        this.responseBufferSize = http.getResponseBufferSize();
        this.classLoader = classLoader;
        this.compliance = http.getHttpCompliance();
        this.plain = (endPoint, context) -> ((Attempt) context.get(ATTEMPT_CONTEXT_KEY)).newConnection(endPoint);
        // The same TLS set-up as HttpClient's: the connector's SslContextFactory (host name verification as
        // configured there), the peer host taken from the remote address the name was resolved to.
        this.tls = connector.newSslClientConnectionFactory(http.getSslContextFactory(), plain);
        // Jetty's connector creates the socket of each connect; its listener tells the attempt, which closes the
        // socket itself when the proxy gives up before the connect completes (see Attempt.close).
        connector.addEventListener(new ClientConnector.ConnectListener() {
            @Override
            public void onConnectBegin(SocketChannel channel, SocketAddress address) {
                Attempt attempt = CONNECTING.get();
                if (attempt != null) {
                    attempt.connecting(channel);
                }
            }
        });
    }

    /**
     * Closes the socket of a connect still pending. The JDK closes a socket registered with a selector for real only
     * when that selector next selects, so the selector it may be registered with is woken up: the client leg's
     * ({@code home}, see {@link WebSocketEndPoints#home}) and the client connector's (they are few, and this is rare:
     * a backend that does not answer SYNs).
     */
    private void closePending(SocketChannel socket, @Nullable Object home) {
        IO.close(socket);
        WebSocketEndPoints.wakeHome(home);
        SelectorManager selectors = connector.getBean(SelectorManager.class);
        if (selectors != null) {
            selectors.getBeans(ManagedSelector.class).forEach(WebSocketEndPoints::wake);
        }
    }

    /** The attempt this thread is connecting, within {@link Attempt#connectNext}. */
    private static final ThreadLocal<@Nullable Attempt> CONNECTING = new ThreadLocal<>();

    /**
     * Starts a handshake with {@code uri}; never throws.
     *
     * @param headers the request headers besides Host and the handshake's own (see the class comment)
     * @param handler the backend leg, opened before the future completes
     * @param response receives the backend's response head and refusal body
     * @param home the client leg's socket ({@link WebSocketEndPoints#home}), whose selector the backend socket then
     *         shares; {@code null} for the client connector's selectors
     */
    CompletableFuture<CoreSession> connect(URI uri, HttpFields headers, FrameHandler handler,
            Configuration.ConfigurationCustomizer configuration, BackendResponse response, @Nullable Object home) {
        Attempt attempt = new Attempt(uri, headers, handler, configuration, response, home);
        try {
            attempt.start();
        } catch (RuntimeException e) {
            // For instance the resolver's executor refusing the task, while stopping.
            attempt.fail(e);
        }
        return attempt.future;
    }

    /** One handshake: resolve, connect, exchange, upgrade. */
    private final class Attempt implements Promise<Connection> {

        final CompletableFuture<CoreSession> future = new CompletableFuture<>();
        private final URI uri;
        private final boolean secure;
        private final HttpFields headers;
        private final FrameHandler handler;
        private final Configuration.ConfigurationCustomizer configuration;
        private final BackendResponse response;
        private final @Nullable Object home;
        private final String key;
        private volatile @Nullable EndPoint endPoint;
        private volatile @Nullable SocketChannel channel;
        private @Nullable List<InetSocketAddress> addresses;
        private int next;

        Attempt(URI uri, HttpFields headers, FrameHandler handler, Configuration.ConfigurationCustomizer configuration,
                BackendResponse response, @Nullable Object home) {
            this.uri = uri;
            this.secure = "wss".equalsIgnoreCase(uri.getScheme());
            this.headers = headers;
            this.handler = handler;
            this.configuration = configuration;
            this.response = response;
            this.home = home;
            byte[] nonce = new byte[16];
            ThreadLocalRandom.current().nextBytes(nonce);
            this.key = Base64.getEncoder().encodeToString(nonce);
            response.closer(this::close);
        }

        void start() {
            // Whoever completes the future first (failure, timer, cancellation), the connection goes with it.
            future.whenComplete((session, failure) -> {
                if (failure != null) {
                    close();
                }
            });
            String host = uri.getHost();
            if (host == null) {
                fail(new IllegalArgumentException("backend URI without a host"));
                return;
            }
            if (host.startsWith("[") && host.endsWith("]")) {
                host = host.substring(1, host.length() - 1);
            }
            int port = uri.getPort() > 0 ? uri.getPort() : secure ? 443 : 80;
            try {
                InetAddress literal = ipLiteral(host);
                if (literal != null) {
                    addresses = List.of(new InetSocketAddress(literal, port));
                    connectNext();
                    return;
                }
            } catch (UnknownHostException e) {
                fail(e);
                return;
            }
            // The future under GIVE_UP_CONTEXT_KEY: a handshake that ends first leaves the look-up's list at once.
            resolver.resolve(host, port, Map.of(CoalescingResolver.GIVE_UP_CONTEXT_KEY, future), new Promise<>() {
                @Override
                public void succeeded(List<InetSocketAddress> resolved) {
                    if (resolved.isEmpty()) {
                        fail(new UnknownHostException("no address"));
                        return;
                    }
                    addresses = resolved;
                    connectNext();
                }

                @Override
                public void failed(Throwable failure) {
                    fail(failure);
                }
            });
        }

        /** Connects to the next resolved address; the connector calls {@link #failed} or opens the connection. */
        private void connectNext() {
            List<InetSocketAddress> candidates = addresses;
            if (future.isDone() || candidates == null) {
                return;
            }
            InetSocketAddress address = candidates.get(next++);
            Map<String, Object> context = new ConcurrentHashMap<>(8);
            context.put(Transport.CONTEXT_KEY, Transport.TCP_IP);
            context.put(ATTEMPT_CONTEXT_KEY, this);
            context.put(ClientConnectionFactory.CONTEXT_KEY, secure ? tls : plain);
            context.put(ClientConnector.CONNECTION_PROMISE_CONTEXT_KEY, this);
            if (home != null) {
                // The client leg's selector takes the backend socket too (see WebSocketEndPoints).
                context.put(WebSocketEndPoints.HOME_CONTEXT_KEY, home);
            }
            CONNECTING.set(this);
            try {
                connector.connect(address, context);
            } finally {
                CONNECTING.remove();
            }
        }

        /** The socket of the connect in progress: closed by {@link #close()} if the proxy gives up first. */
        void connecting(SocketChannel socket) {
            channel = socket;
            if (future.isDone()) {
                closePending(socket, home);
            }
        }

        /** The connection opened (its {@code onOpen} has written the request). */
        @Override
        public void succeeded(Connection connection) {
        }

        /** The connect failed: try the next address, as Jetty's client does, or give up. */
        @Override
        public void failed(Throwable failure) {
            List<InetSocketAddress> candidates = addresses;
            if (candidates != null && next < candidates.size() && !future.isDone()) {
                connectNext();
            } else {
                fail(failure);
            }
        }

        Connection newConnection(EndPoint endPoint) {
            Exchange exchange = new Exchange(this, endPoint);
            if (endPoint instanceof SslConnection.SslEndPoint tlsEndPoint) {
                // The TLS failure itself (untrusted certificate, host name mismatch), before the close it causes.
                tlsEndPoint.getSslConnection().addHandshakeListener(new SslHandshakeListener() {
                    @Override
                    public void handshakeFailed(Event event, Throwable failure) {
                        fail(failure);
                    }
                });
            }
            return exchange;
        }

        /**
         * The connection opened: publish its end point for {@link #close()}, or close it at once when the proxy gave
         * up meanwhile (the {@code whenComplete} in {@link #start()} found no end point to close). Done in
         * {@code onOpen}, not when the connection is created: Jetty opens the end point after that, and an end point
         * closed before it is opened makes Jetty log a warning. Returns whether the exchange may go on.
         */
        boolean opened(EndPoint open) {
            this.endPoint = open;
            if (future.isDone()) {
                open.close();
                return false;
            }
            return true;
        }

        void fail(Throwable failure) {
            future.completeExceptionally(failure);
        }

        /**
         * Closes the connection, if there is one yet; idempotent. Only called once the future failed: an end point
         * upgraded meanwhile is closed too, and its session is failed by {@link #upgraded}.
         */
        void close() {
            EndPoint open = endPoint;
            if (open != null) {
                open.close();
                return;
            }
            // Still connecting (a backend that does not answer SYNs): close the socket now rather than when Jetty's
            // connect times out, which it does after the longest connect timeout of all routes. Jetty's pending
            // connect then fails or times out on a closed socket, and the attempt ignores it (the future is done).
            SocketChannel socket = channel;
            if (socket != null && socket.isOpen()) {
                closePending(socket, home);
            }
        }

        ByteBuffer request() {
            StringBuilder head = new StringBuilder(512);
            String path = uri.getRawPath();
            head.append("GET ").append(path == null || path.isEmpty() ? "/" : path);
            String query = uri.getRawQuery();
            if (query != null) {
                head.append('?').append(query);
            }
            head.append(" HTTP/1.1\r\n");
            if (!headers.contains(HttpHeader.HOST)) {
                line(head, "Host", hostHeader(uri, secure));
            }
            for (HttpField field : headers) {
                HttpHeader known = field.getHeader();
                // The handshake's own, written below; the client's are dropped, and an authenticator cannot set these
                // (AuthDecision reserves them, so that plain HTTP does not send what an upgrade drops).
                if (known != null) {
                    switch (known) {
                        case UPGRADE, CONNECTION, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, PRAGMA, CACHE_CONTROL,
                                EXPECT -> {
                            continue;
                        }
                        default -> {
                        }
                    }
                }
                line(head, field.getName(), field.getValue());
            }
            head.append("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ").append(key)
                    .append("\r\nSec-WebSocket-Version: ").append(WebSocketConstants.SPEC_VERSION_STRING)
                    .append("\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n\r\n");
            return ByteBuffer.wrap(head.toString().getBytes(StandardCharsets.ISO_8859_1));
        }

        /**
         * Validates a {@code 101} as RFC 6455 section 4.1 says a client must, more strictly than
         * {@code CoreClientUpgradeRequest.upgrade}: one {@code Upgrade} value, {@code websocket} in any case (not
         * {@code h2c, websocket}); one {@code Sec-WebSocket-Accept}, compared exactly (base64 has case); no extension
         * at all (Jetty's client lets names starting with {@code @} through, its internal ones) but one
         * {@code permessage-deflate} element that one of the proxy's offers allows, when it made any; one subprotocol
         * among those offered. Returns the failure's description when it is not valid.
         */
        @Nullable String validate(HttpFields answer) {
            List<String> upgrade = answer.getValuesList(HttpHeader.UPGRADE);
            if (upgrade.size() != 1 || !upgrade.get(0).trim().equalsIgnoreCase("websocket")) {
                return "101 without Upgrade: websocket";
            }
            if (!answer.contains(HttpHeader.CONNECTION, "upgrade")) {
                return "WebSocket upgrade missing 'Connection: Upgrade' header";
            }
            List<String> accept = answer.getValuesList(HttpHeader.SEC_WEBSOCKET_ACCEPT);
            if (accept.size() != 1 || !WebSocketUtils.hashKey(key).equals(accept.get(0).trim())) {
                return "Invalid Sec-WebSocket-Accept hash";
            }
            String extensions = DeflatePassThrough.invalidAnswer(answer, headers);
            if (extensions != null) {
                return extensions;
            }
            List<String> chosen = answer.getCSV(HttpHeader.SEC_WEBSOCKET_SUBPROTOCOL, true);
            if (chosen.size() > 1) {
                return "Too many WebSocket subprotocols in response";
            }
            if (chosen.size() == 1 && !headers.getCSV(HttpHeader.SEC_WEBSOCKET_SUBPROTOCOL, true)
                    .contains(chosen.get(0))) {
                return "subprotocol not found in offered subprotocols";
            }
            return null;
        }

        WebSocketCoreSession newSession(EndPoint endPoint, HttpFields answer) {
            List<String> chosen = answer.getCSV(HttpHeader.SEC_WEBSOCKET_SUBPROTOCOL, true);
            // A valid answer (validate) with an extension accepted one of the proxy's permessage-deflate offers.
            boolean deflate = DeflatePassThrough.accepted(answer) != null;
            Negotiated negotiated = ClientUpgrade.negotiated(components, Behavior.CLIENT, uri,
                    chosen.isEmpty() ? null : chosen.get(0), deflate, secure);
            WebSocketCoreSession session = new WebSocketCoreSession(handler, Behavior.CLIENT, negotiated, components);
            if (classLoader != null) {
                session.setClassLoader(classLoader);
            }
            configuration.customize(session);
            // Its reads resumed by the relay run on the resuming thread (see WebSocketEndPoints).
            WebSocketConnection connection = new WebSocketConnection(endPoint,
                    WebSocketEndPoints.resumingExecutor(executor), scheduler, pool, session, masks);
            session.setWebSocketConnection(connection);
            return session;
        }

        /** The upgraded session is open: hand it over, or drop it if the proxy gave up meanwhile. */
        void upgraded(WebSocketCoreSession session) {
            if (!future.complete(session)) {
                future.exceptionally(failure -> {
                    session.processConnectionError(failure, Callback.NOOP);
                    return null;
                });
            }
        }

        @Override
        public String toString() {
            return "BackendHandshake[" + Relay.withoutQuery(uri) + "]";
        }
    }

    /**
     * The connection during the exchange: writes the request, parses the response, and on a valid {@code 101}
     * replaces itself with the WebSocket connection. Its reads are serialized by the end point; {@code onClose} may
     * run on another thread (a timer closing the end point) and only fails the attempt.
     */
    private final class Exchange extends AbstractConnection.NonBlocking
            implements Connection.UpgradeFrom, HttpParser.ResponseHandler {

        private final Attempt attempt;
        private final HttpParser parser;
        private HttpFields.Mutable fields = HttpFields.build();
        private int status;
        /** Set by the parser's callbacks, acted upon once {@code parseNext} has returned (it is not reentrant). */
        private boolean switching;
        private boolean interimDone;
        private boolean refused;
        private boolean headDone;
        private @Nullable Throwable broken;
        private volatile boolean upgrading;
        private volatile @Nullable Throwable writeFailure;
        private @Nullable ByteBuffer leftover;

        Exchange(Attempt attempt, EndPoint endPoint) {
            super(endPoint, executor);
            this.attempt = attempt;
            this.parser = new HttpParser(this, MAX_RESPONSE_HEAD, compliance);
        }

        @Override
        public void onOpen() {
            super.onOpen();
            if (!attempt.opened(getEndPoint())) {
                return;
            }
            ByteBuffer request;
            try {
                request = attempt.request();
            } catch (RuntimeException e) {
                attempt.fail(e);
                return;
            }
            // A failed write still reads: the backend may have answered (and closed) before reading it all, as a
            // TLS server does with plain text; Jetty's client reads that response too.
            getEndPoint().write(Callback.from(Invocable.InvocationType.NON_BLOCKING, this::fillInterested,
                    this::writeFailed), request);
        }

        private void writeFailed(Throwable failure) {
            if (LOG.isDebugEnabled()) {
                LOG.debug("{} could not write the request", attempt, failure);
            }
            writeFailure = failure;
            if (getEndPoint().isOpen()) {
                fillInterested();
            } else {
                attempt.fail(failure);
            }
        }

        @Override
        public void onFillable() {
            RetainableByteBuffer network = pool.acquire(responseBufferSize, true);
            try {
                ByteBuffer buffer = network.getByteBuffer();
                while (!attempt.future.isDone()) {
                    BufferUtil.clear(buffer);
                    int filled = getEndPoint().fill(buffer);
                    if (filled == 0) {
                        fillInterested();
                        return;
                    }
                    if (filled < 0) {
                        parser.atEOF();
                    }
                    if (parse(buffer) || filled < 0) {
                        if (filled < 0 && !attempt.future.isDone()) {
                            attempt.fail(new EOFException("backend closed the connection during the handshake"));
                        }
                        return;
                    }
                }
            } catch (Throwable x) {
                attempt.fail(x);
            } finally {
                network.release();
            }
        }

        /** Parses what {@code buffer} holds; {@code true} when the exchange is over (however it ended). */
        private boolean parse(ByteBuffer buffer) {
            while (true) {
                boolean stopped = parser.parseNext(buffer);
                if (broken != null) {
                    attempt.fail(broken);
                    return true;
                }
                if (switching) {
                    upgrade(buffer);
                    return true;
                }
                if (refused) {
                    if (LOG.isDebugEnabled()) {
                        LOG.debug("{} refused with {}", attempt, status);
                    }
                    attempt.fail(new UpgradeException(attempt.uri, status,
                            "Failed to upgrade to websocket: Unexpected HTTP Response Status Code: " + status));
                    return true;
                }
                if (interimDone) {
                    interimDone = false;
                    status = 0;
                    fields = HttpFields.build();
                    parser.reset();
                    continue;
                }
                if (!stopped && !buffer.hasRemaining()) {
                    return false;
                }
            }
        }

        private void upgrade(ByteBuffer buffer) {
            HttpFields answer = fields.asImmutable();
            String invalid = attempt.validate(answer);
            if (invalid != null) {
                attempt.fail(DeflatePassThrough.UNMATCHED.equals(invalid)
                        ? new DeflatePassThrough.Unmatched(attempt.uri)
                        : new UpgradeException(attempt.uri, HttpStatus.SWITCHING_PROTOCOLS_101, invalid));
                return;
            }
            WebSocketCoreSession session;
            try {
                session = attempt.newSession(getEndPoint(), answer);
            } catch (RuntimeException e) {
                attempt.fail(new UpgradeException(attempt.uri, HttpStatus.SWITCHING_PROTOCOLS_101, e.getMessage(),
                        e));
                return;
            }
            if (attempt.future.isDone()) {
                return;
            }
            upgrading = true;
            leftover = buffer;
            try {
                getEndPoint().upgrade(session.getConnection());
            } catch (Throwable x) {
                attempt.fail(x);
                getEndPoint().close();
                return;
            } finally {
                leftover = null;
            }
            attempt.upgraded(session);
        }

        @Override
        public @Nullable ByteBuffer onUpgradeFrom() {
            ByteBuffer rest = leftover;
            // Copied by the WebSocket connection before upgrade() returns; the pooled buffer is released after.
            return rest != null && rest.hasRemaining() ? rest : null;
        }

        @Override
        public void onClose(@Nullable Throwable cause) {
            super.onClose(cause);
            if (!upgrading) {
                Throwable failure = cause != null ? cause : writeFailure;
                attempt.fail(failure != null ? failure
                        : new EOFException("backend connection closed during the handshake"));
            }
        }

        @Override
        public void onFillInterestedFailed(Throwable cause) {
            attempt.fail(cause);
            super.onFillInterestedFailed(cause);
        }

        /**
         * Ignores the end point's idle timeout: the proxy's timer (the connect timeout, or what is left of the
         * failover time) bounds the handshake, and always runs. The end point has the backend connector's idle
         * timeout, Jetty's 30 s, which failed the read of a backend silent that long with a {@code TimeoutException}
         * (504, a passive-health failure) though the route allowed longer. Over TLS, {@code SslConnection} asks this
         * connection too. Once upgraded, the WebSocket connection answers instead, with the leg's own idle timeout,
         * which its session sets when it opens.
         */
        @Override
        public boolean onIdleExpired(TimeoutException timeout) {
            return false;
        }

        // ---- HttpParser.ResponseHandler: record only, see parse() ----

        @Override
        public void startResponse(HttpVersion version, int status, String reason) {
            this.status = status;
        }

        @Override
        public void parsedHeader(HttpField field) {
            fields.add(field);
        }

        @Override
        public boolean headerComplete() {
            if (status == HttpStatus.SWITCHING_PROTOCOLS_101) {
                attempt.response.head(status, fields.asImmutable());
                switching = true;
                return true;
            }
            if (HttpStatus.isInterim(status)) {
                return false;
            }
            attempt.response.head(status, fields.asImmutable());
            headDone = true;
            return false;
        }

        @Override
        public boolean content(ByteBuffer item) {
            if (attempt.response.append(item)) {
                // Past the cap: the rest is not needed (the relayed refusal gets its own length, see Responses.relay).
                refused = true;
                return true;
            }
            return false;
        }

        @Override
        public boolean contentComplete() {
            return false;
        }

        @Override
        public boolean messageComplete() {
            if (HttpStatus.isInterim(status) && status != HttpStatus.SWITCHING_PROTOCOLS_101) {
                interimDone = true;
            } else {
                attempt.response.complete();
                refused = true;
            }
            return true;
        }

        @Override
        public void earlyEOF() {
            if (headDone) {
                // The head was complete: a refusal with a truncated body, relayed as far as it came.
                refused = true;
            } else {
                broken = new EOFException("backend closed the connection in its response head");
            }
        }

        @Override
        public void badMessage(HttpException failure) {
            // An error response that broke down after its status line (a TLS backend answering plain text with its
            // own 400, then bytes the parser refuses; a head over the limit) is still the backend's refusal: relayed
            // with that status, as far as it came. Anything else garbled (no status yet, an interim or a 101 gone
            // bad) is no answer at all, so the client gets 502 (status 0), or 502 for an invalid 101.
            if (status >= 400 || status == HttpStatus.SWITCHING_PROTOCOLS_101) {
                attempt.response.head(status, fields.asImmutable());
            }
            broken = failure instanceof Throwable throwable ? throwable
                    : new IOException("bad response from the backend: " + failure.getReason());
        }

        @Override
        public String toConnectionString() {
            return attempt + "@" + Integer.toHexString(hashCode());
        }
    }

    /**
     * The address of an IP literal, parsed without any lookup; {@code null} for a name, which must be resolved.
     * IPv6 literals are the only hosts with a colon; IPv4 ones are four decimal octets.
     */
    static @Nullable InetAddress ipLiteral(String host) throws UnknownHostException {
        if (host.indexOf(':') >= 0) {
            return InetAddress.getByName(host); // a literal, or UnknownHostException: never a lookup
        }
        String[] parts = host.split("\\.", -1);
        if (parts.length != 4) {
            return null;
        }
        byte[] address = new byte[4];
        for (int i = 0; i < 4; i++) {
            String part = parts[i];
            if (part.isEmpty() || part.length() > 3) {
                return null;
            }
            int value = 0;
            for (int c = 0; c < part.length(); c++) {
                char digit = part.charAt(c);
                if (digit < '0' || digit > '9') {
                    return null;
                }
                value = value * 10 + (digit - '0');
            }
            if (value > 255) {
                return null;
            }
            address[i] = (byte) value;
        }
        return InetAddress.getByAddress(address);
    }

    /**
     * One header line, cleaned as Jetty's {@code HttpGenerator} cleans them: in a name, a colon, a control character
     * (but HTAB) or a character above {@code 0xFF} becomes {@code '.'}; in a value, a control character (but HTAB) or
     * a character above {@code 0xFF} becomes a space. So no header can end early or carry bytes the request's
     * ISO-8859-1 encoding cannot hold.
     */
    private static void line(StringBuilder head, String name, @Nullable String value) {
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            head.append(c == ':' || c > 0xFF || (c <= 0x1F && c != '\t') ? '.' : c);
        }
        head.append(": ");
        if (value != null) {
            for (int i = 0; i < value.length(); i++) {
                char c = value.charAt(i);
                head.append(c > 0xFF || (c <= 0x1F && c != '\t') ? ' ' : c);
            }
        }
        head.append("\r\n");
    }

    /** The backend URI's authority, without the scheme's default port (as Jetty's client writes {@code Host}). */
    static String hostHeader(URI uri, boolean secure) {
        String authority = uri.getRawAuthority();
        int port = uri.getPort();
        if ((port == 80 && !secure) || (port == 443 && secure)) {
            return authority.substring(0, authority.lastIndexOf(':'));
        }
        return authority;
    }
}
