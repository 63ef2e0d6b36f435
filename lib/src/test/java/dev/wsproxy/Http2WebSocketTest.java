package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;

import org.eclipse.jetty.http.HttpCompliance;
import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpURI;
import org.eclipse.jetty.http.HttpVersion;
import org.eclipse.jetty.http.MetaData;
import org.eclipse.jetty.http2.ErrorCode;
import org.eclipse.jetty.http2.api.Session;
import org.eclipse.jetty.http2.api.Stream;
import org.eclipse.jetty.http2.frames.DataFrame;
import org.eclipse.jetty.http2.frames.HeadersFrame;
import org.eclipse.jetty.http2.frames.ResetFrame;
import org.eclipse.jetty.http2.client.HTTP2Client;
import org.eclipse.jetty.http2.server.HTTP2CServerConnectionFactory;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.jspecify.annotations.Nullable;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import dev.wsproxy.internal.WebSocketProxyHandler;

/**
 * WebSockets over HTTP/2 (RFC 8441: an extended {@code CONNECT} with {@code :protocol websocket}) to the proxy mounted
 * in a server that serves HTTP/2, as browsers open them on an h2 connection whose server advertises
 * {@code SETTINGS_ENABLE_CONNECT_PROTOCOL} (Jetty's HTTP/2 factories do by default), without falling back to HTTP/1.1.
 * Before, the proxy took such a request for plain HTTP and answered {@code 405}: the browser's WebSocket failed.
 * Plain-text h2c stands in for h2 over TLS: once ALPN chose h2, the streams are the same. The backend leg stays an
 * HTTP/1.1 upgrade. The client is {@link RawH2WebSocket} (see there why not Jetty's WebSocket client).
 */
class Http2WebSocketTest {

    private final RecordingListener listener = new RecordingListener();
    private TestBackend backend;
    private WebSocketProxy proxy;
    private Server server;
    private ServerConnector connector;
    private HTTP2Client h2;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        h2 = new HTTP2Client();
        h2.start();
    }

    /** Mounts the proxy in a server whose connector offers HTTP/1.1 and h2c: the proxy's or Jetty's ({@code kind}). */
    private void mount(String kind, UnaryOperator<ProxyBuilder> configuration) throws Exception {
        mount(kind, new HttpConfiguration(), configuration);
    }

    private void mount(String kind, HttpConfiguration http, UnaryOperator<ProxyBuilder> configuration)
            throws Exception {
        proxy = configuration.apply(ProxyBuilder.create().listener(listener)).build();
        server = new Server(WebSocketProxy.threadPool());
        connector = kind.equals("proxy's")
                ? WebSocketProxy.serverConnector(server, new HttpConnectionFactory(http),
                        new HTTP2CServerConnectionFactory(http))
                : new ServerConnector(server, new HttpConnectionFactory(http), new HTTP2CServerConnectionFactory(http));
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        server.setHandler(proxy.handler());
        server.start();
    }

    private void mount(UnaryOperator<ProxyBuilder> configuration) throws Exception {
        mount("proxy's", configuration);
    }

    /** Mounts the proxy with one route, {@code /api/}, proxying plain HTTP to {@code plain}; opens an h2 session. */
    private Session mountPlainTo(RawBackend plain) throws Exception {
        mount(builder -> builder.route("/api/", r -> r.backends(plain.backend())
                .plainHttp(PlainHttp.PROXY_TO_BACKEND)));
        return RawH2WebSocket.session(h2, connector.getLocalPort());
    }

    @AfterEach
    void stop() throws Exception {
        try {
            if (proxy != null) {
                Clients.assertNoLeaks(proxy, null, backend);
            }
        } finally {
            h2.stop();
            if (server != null) {
                server.stop();
            }
            backend.close();
        }
    }

    private RawH2WebSocket open(String path) throws Exception {
        return open(path, HttpFields.EMPTY);
    }

    private RawH2WebSocket open(String path, HttpFields headers) throws Exception {
        return RawH2WebSocket.open(h2, connector.getLocalPort(), path, headers);
    }

    /** Ends a session from the client: its close, the proxy's answer with the same code, the end of the stream. */
    private static void closeFromClient(RawH2WebSocket ws) throws Exception {
        ws.sendClose(1000, "");
        RawFrames.assertCloseFrame(ws.read(), 1000, "");
        assertThat(ws.awaitEnd()).as("the stream ended").isTrue();
    }

    @ParameterizedTest(name = "{0} connector")
    @ValueSource(strings = {"proxy's", "plain"})
    void relaysTextAndBinaryOverHttp2(String kind) throws Exception {
        mount(kind, builder -> builder.route("/ws/", backend.backend()));
        RawH2WebSocket ws = open("/ws/chat").accepted();
        assertThat(ws.head().getHttpFields().get(HttpHeader.SEC_WEBSOCKET_ACCEPT)).as("no key to answer").isNull();
        ws.sendText("hello");
        assertThat(ws.readText()).isEqualTo("hello");
        ws.send(RawFrames.encode(RawFrames.BINARY, new byte[] {1, 2, 3}, true));
        RawFrames.Frame binary = ws.readMessage();
        assertThat(binary.opcode()).isEqualTo(RawFrames.BINARY);
        assertThat(binary.payload()).containsExactly(1, 2, 3);
        ws.sendText("whoami");
        assertThat(ws.readText()).as("through the backend").isEqualTo("b1");
        closeFromClient(ws);
        TestBackend.Upgrade upgrade = backend.upgrades.poll(10, TimeUnit.SECONDS);
        assertThat(upgrade.header("sec-websocket-version")).as("the backend leg is an HTTP/1.1 upgrade")
                .isEqualTo("13");
        assertThat(upgrade.header("sec-websocket-key")).isNotNull();
    }

    @ParameterizedTest(name = "{0} connector")
    @ValueSource(strings = {"proxy's", "plain"})
    void relaysAOneMebibyteMessageIntact(String kind) throws Exception {
        mount(kind, builder -> builder.route("/ws/", backend.backend()));
        RawH2WebSocket ws = open("/ws/big").accepted();
        byte[] message = new byte[1024 * 1024];
        for (int i = 0; i < message.length; i++) {
            message[i] = (byte) (i * 31 + (i >>> 11));
        }
        ws.send(RawFrames.encode(RawFrames.BINARY, message, true));
        RawFrames.Frame echo = ws.readMessage();
        assertThat(echo.payload().length).isEqualTo(message.length);
        assertThat(java.util.Arrays.equals(echo.payload(), message)).as("echoed byte for byte").isTrue();
        closeFromClient(ws);
    }

    /**
     * {@link ProxyBuilder#compressionPassThrough(boolean)} over HTTP/2: the client's {@code permessage-deflate} offer
     * reaches the backend, the stream's {@code 200} carries the backend's answer, and compressed frames pass both
     * ways, RSV1 and all (the Jetty backend inflates the client's text, and compresses its echo).
     */
    @Test
    void passesDeflateThroughOverHttp2() throws Exception {
        mount(builder -> builder.route("/ws/", backend.backend()).compressionPassThrough(true));
        RawH2WebSocket ws = open("/ws/deflate", HttpFields.build()
                .add(HttpHeader.SEC_WEBSOCKET_EXTENSIONS, "permessage-deflate")).accepted();
        assertThat(ws.head().getHttpFields().get(HttpHeader.SEC_WEBSOCKET_EXTENSIONS)).isEqualTo("permessage-deflate");
        String text = "deflated over h2 ".repeat(40);
        java.util.zip.Deflater deflater = new java.util.zip.Deflater(java.util.zip.Deflater.DEFAULT_COMPRESSION, true);
        deflater.setInput(text.getBytes(StandardCharsets.UTF_8));
        byte[] buffer = new byte[4096];
        int length = deflater.deflate(buffer, 0, buffer.length, java.util.zip.Deflater.SYNC_FLUSH);
        deflater.end();
        // RFC 7692 section 7.2.1: the trailing 00 00 FF FF of the flush is left out.
        byte[] compressed = java.util.Arrays.copyOf(buffer, length - 4);
        ws.send(RawFrames.rsv1(RawFrames.encode(RawFrames.TEXT, compressed, true)));
        assertThat(backend.texts.poll(10, TimeUnit.SECONDS)).as("what the backend inflated").isEqualTo(text);
        RawFrames.Frame echo = ws.read();
        assertThat(echo.rsv1()).as("the backend's echo, compressed").isTrue();
        java.util.zip.Inflater inflater = new java.util.zip.Inflater(true);
        inflater.setInput(RawFrames.concat(echo.payload(), RawFrames.bytes(0, 0, 0xFF, 0xFF)));
        byte[] inflated = new byte[4096];
        int inflatedLength = inflater.inflate(inflated);
        inflater.end();
        assertThat(new String(inflated, 0, inflatedLength, StandardCharsets.UTF_8)).isEqualTo(text);
        assertThat(backend.upgrades.poll(10, TimeUnit.SECONDS).header("sec-websocket-extensions"))
                .isEqualTo("permessage-deflate");
        closeFromClient(ws);
    }

    @Test
    void relaysTheBackendsSubprotocol() throws Exception {
        mount(builder -> builder.route("/ws/", backend.backend()));
        RawH2WebSocket ws = open("/ws/chat?room=1", HttpFields.build()
                .add(HttpHeader.SEC_WEBSOCKET_SUBPROTOCOL, "v1.other, chat.v2")).accepted();
        assertThat(ws.head().getHttpFields().get(HttpHeader.SEC_WEBSOCKET_SUBPROTOCOL)).isEqualTo("chat.v2");
        TestBackend.Upgrade upgrade = backend.upgrades.poll(10, TimeUnit.SECONDS);
        assertThat(upgrade.subprotocols()).containsExactly("v1.other", "chat.v2");
        assertThat(upgrade.pathQuery()).isEqualTo("/ws/chat?room=1");
        closeFromClient(ws);
    }

    /**
     * HTTP/2 has no {@code Host}: the backend gets the client's {@code :authority} as {@code Host} and
     * {@code X-Forwarded-Host} (RFC 9113 section 8.3.1), as it gets an HTTP/1.1 client's {@code Host}. Before, it got
     * its own address as {@code Host} and no {@code X-Forwarded-Host}: a backend that serves several hosts, or builds
     * links from the host, saw the wrong one.
     */
    @Test
    void passesTheClientsAuthorityAsHost() throws Exception {
        mount(builder -> builder.route("/ws/", backend.backend()));
        RawH2WebSocket ws = open("/ws/chat").accepted();
        TestBackend.Upgrade upgrade = backend.upgrades.poll(10, TimeUnit.SECONDS);
        String authority = "127.0.0.1:" + connector.getLocalPort();
        assertThat(upgrade.header("host")).isEqualTo(authority);
        assertThat(upgrade.header("x-forwarded-host")).isEqualTo(authority);
        closeFromClient(ws);
    }

    /**
     * Behind a connector whose compliance lets a {@code Host} differ from the request's authority (Jetty's
     * {@code RFC2616} and {@code LEGACY} allow {@code MISMATCHED_AUTHORITY}; its default refuses it with 400), the
     * backend gets the authority as {@code Host} and {@code X-Forwarded-Host}: an HTTP/2 client's {@code :authority}
     * (RFC 9113 section 8.3.1: an intermediary builds {@code Host} from it, replacing the field) and an HTTP/1.1
     * absolute-form target's (RFC 9112 section 3.2.2: the received {@code Host} is ignored). That authority is what
     * the proxy's checks read ({@code sameOrigin}, the request's {@code uri()} an authenticator or selector reads);
     * before, the backend got the client's {@code Host}, a host none of them had seen.
     */
    @Test
    void sendsTheRequestsAuthorityAsHostWhenALenientConnectorLetsAnotherHostBesideIt() throws Exception {
        HttpConfiguration lenient = new HttpConfiguration();
        lenient.setHttpCompliance(HttpCompliance.RFC2616);
        mount("proxy's", lenient, builder -> builder.route("/ws/", backend.backend()));
        String authority = "127.0.0.1:" + connector.getLocalPort();

        RawH2WebSocket ws = open("/ws/chat", HttpFields.build().add(HttpHeader.HOST, "admin.internal")).accepted();
        TestBackend.Upgrade upgrade = backend.upgrades.poll(10, TimeUnit.SECONDS);
        assertThat(upgrade.headers().get("host")).as("over HTTP/2").containsExactly(authority);
        assertThat(upgrade.headers().get("x-forwarded-host")).containsExactly(authority);
        closeFromClient(ws);

        try (RawHttp client = RawHttp.over(new Socket("127.0.0.1", connector.getLocalPort()))) {
            RawHttp.Response response = client.exchange(RawHttp.Request.upgrade("http://" + authority + "/ws/chat",
                    "admin.internal"));
            assertThat(response.status()).as("%s", response).isEqualTo(101);
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        upgrade = backend.upgrades.poll(10, TimeUnit.SECONDS);
        assertThat(upgrade.headers().get("host")).as("an HTTP/1.1 absolute-form target").containsExactly(authority);
        assertThat(upgrade.headers().get("x-forwarded-host")).containsExactly(authority);
    }

    /**
     * A client over HTTP/2 that sends a {@code host} field unlike its {@code :authority}, behind a connector whose
     * HTTP compliance lets that through (Jetty's default answers 400, {@code Authority!=Host}; {@code RFC2616} and
     * {@code LEGACY} allow it): the backend gets the {@code :authority} as {@code Host} and {@code X-Forwarded-Host},
     * on upgrades and plain HTTP alike, as RFC 9113 section 8.3.1 requires of an intermediary that makes an HTTP/1.1
     * request of an HTTP/2 one, and as the route's hooks read it ({@code HandshakeRequest.uri()}, {@code sameOrigin}).
     * Before, the backend got the {@code host} field: an authenticator allowed the client on one host while a backend
     * that serves several served another.
     */
    @Test
    void sendsTheAuthorityTheHooksReadAsHostNotAHostFieldThatDiffers() throws Exception {
        HttpConfiguration lenient = new HttpConfiguration();
        lenient.setHttpCompliance(HttpCompliance.RFC2616);
        String ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        try (RawBackend plain = RawBackend.answering(RawBackend.raw(ok))) {
            BlockingQueue<String> checked = new LinkedBlockingQueue<>();
            Authenticator recording = Authenticator.of(request -> {
                checked.add(request.uri().getRawAuthority());
                return AuthDecision.allow();
            });
            mount("proxy's", lenient, builder -> builder
                    .route("/ws/", r -> r.backends(backend.backend()).authenticator(recording))
                    .route("/api/", r -> r.backends(plain.backend()).plainHttp(PlainHttp.PROXY_TO_BACKEND)
                            .authenticator(recording)));
            String authority = "127.0.0.1:" + connector.getLocalPort();
            HttpFields otherHost = HttpFields.build().put(HttpHeader.HOST, "other.example");

            RawH2WebSocket ws = open("/ws/chat", otherHost).accepted();
            assertThat(checked.poll(10, TimeUnit.SECONDS)).as("the host the authenticator checked")
                    .isEqualTo(authority);
            TestBackend.Upgrade upgrade = backend.upgrades.poll(10, TimeUnit.SECONDS);
            assertThat(upgrade.header("host")).isEqualTo(authority);
            assertThat(upgrade.header("x-forwarded-host")).isEqualTo(authority);
            closeFromClient(ws);

            Session session = RawH2WebSocket.session(h2, connector.getLocalPort());
            assertThat(plainStatus(session, "GET", "/api/page", otherHost)).isEqualTo(200);
            assertThat(checked.poll(10, TimeUnit.SECONDS)).isEqualTo(authority);
            RawBackend.Request request = plain.nextRequest();
            assertThat(request.header("Host")).isEqualTo(authority);
            assertThat(request.header("X-Forwarded-Host")).isEqualTo(authority);
        }
    }

    /**
     * Browsers send each cookie in a field of its own over HTTP/2 (RFC 9113 section 8.2.3); an HTTP/1.1 backend gets
     * them joined into one {@code Cookie}, as RFC 9113 requires of an intermediary: many backends read only the first.
     */
    @Test
    void joinsTheClientsCookieFieldsIntoOneCookie() throws Exception {
        mount(builder -> builder.route("/ws/", backend.backend()));
        RawH2WebSocket ws = open("/ws/chat", HttpFields.build().add(HttpHeader.COOKIE, "a=1")
                .add(HttpHeader.COOKIE, "b=2").add("X-Other", "kept")).accepted();
        TestBackend.Upgrade upgrade = backend.upgrades.poll(10, TimeUnit.SECONDS);
        assertThat(upgrade.headers().get("cookie")).containsExactly("a=1; b=2");
        assertThat(upgrade.header("x-other")).isEqualTo("kept");
        closeFromClient(ws);
    }

    @Test
    void relaysTheBackendsRefusalAsTheStreamsStatus() throws Exception {
        // The backend at its root: /ws/reject403 reaches it as /reject403, which it refuses.
        mount(builder -> builder.route("/ws/", Backend.of(backend.uri() + "/")));
        RawH2WebSocket refused = open("/ws/reject403");
        assertThat(refused.status()).isEqualTo(403);
        assertThat(refused.head().getHttpFields().get("X-Backend-Reason")).isEqualTo("forbidden tenant");
        assertThat(refused.body()).isEqualTo("forbidden by backend");

        RawH2WebSocket unauthorized = open("/ws/reject401");
        assertThat(unauthorized.status()).isEqualTo(401);
        assertThat(unauthorized.head().getHttpFields().get(HttpHeader.WWW_AUTHENTICATE))
                .isEqualTo("Bearer realm=\"test\"");
        assertThat(listener.all(RecordingListener.Rejected.class)).extracting(RecordingListener.Rejected::status)
                .containsExactly(403, 401);
    }

    /**
     * A backend that answers the upgrade with a success of its own did not upgrade (an application that serves its
     * page for any path, the WebSocket's included). Over HTTP/1.1 its status is relayed as a refusal: only a
     * {@code 101} opens a WebSocket there. Over HTTP/2 a 2xx is what opens one (RFC 8441 section 5, RFC 9110 section
     * 9.3.6), so the client gets {@code 502}, as for a backend's invalid {@code 101}. Before, it got the backend's
     * {@code 200} and body: the client took its stream for an open WebSocket and read the page as frames, and the
     * listeners were told of a refusal.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"200 OK", "204 No Content"})
    void answersABackendsSuccessThatIsNoUpgradeWith502(String statusLine) throws Exception {
        String body = statusLine.startsWith("204") ? "" : "<p>app</p>";
        try (RawBackend page = RawBackend.answering(RawBackend.raw("HTTP/1.1 " + statusLine + "\r\n"
                + "Content-Type: text/html\r\nX-From: page\r\nContent-Length: " + body.length() + "\r\n\r\n" + body))) {
            mount(builder -> builder.route("/ws/", page.backend()));
            RawH2WebSocket ws = open("/ws/chat");
            assertThat(ws.status()).isEqualTo(502);
            assertThat(ws.head().getHttpFields().get("X-From")).as("none of the backend's headers").isNull();
            assertThat(ws.body()).as("the proxy's own body, the stream ended").isEqualTo("502 Bad Gateway\n");
            assertThat(page.nextEnd(10)).as("the backend connection, closed").isIn("eof", "reset");
            int status = Integer.parseInt(statusLine.substring(0, 3));
            assertThat(listener.all(RecordingListener.Rejected.class)).containsExactly(new RecordingListener.Rejected(
                    "/ws/", "/ws/chat", 502, "backend answered " + status + " without upgrading"));
        }
    }

    @Test
    void refusesBeforeConnectingAsForAnHttp11Upgrade() throws Exception {
        mount(builder -> builder.route("/ws/", r -> r.backends(backend.backend())
                .originValidator(OriginValidator.allowList("https://app.example"))));
        HttpFields allowed = HttpFields.build().put(HttpHeader.ORIGIN, "https://app.example");
        assertThat(open("/ws/chat", HttpFields.build().put(HttpHeader.ORIGIN, "https://evil.example")).status())
                .as("a foreign Origin").isEqualTo(403);
        Session session = RawH2WebSocket.session(h2, connector.getLocalPort());
        MetaData.Response oldVersion = RawH2WebSocket.open(session, connector.getLocalPort(), "/ws/chat", allowed,
                "8", true).head();
        assertThat(oldVersion.getStatus()).isEqualTo(426);
        assertThat(oldVersion.getHttpFields().get(HttpHeader.SEC_WEBSOCKET_VERSION)).isEqualTo("13");
        assertThat(RawH2WebSocket.open(session, connector.getLocalPort(), "/ws/chat", allowed, null, true).status())
                .as("no version").isEqualTo(426);
        assertThat(open("/ws/a/../chat", allowed).status()).as("dot segments").isEqualTo(400);
        assertThat(open("/ws/chat", HttpFields.build().add(allowed).put(HttpHeader.CONTENT_LENGTH, "5")).status())
                .as("a body").isEqualTo(400);
        assertThat(open("/ws/chat", HttpFields.build().add(allowed).add(HttpHeader.ORIGIN, "https://evil.example"))
                .status()).as("a second Origin").isEqualTo(400);
        assertThat(open("/ws/chat", HttpFields.build().add(allowed).add(HttpHeader.AUTHORIZATION, "Bearer a")
                .add(HttpHeader.AUTHORIZATION, "Bearer b")).status()).as("a second Authorization").isEqualTo(400);
        assertThat(listener.all(RecordingListener.Rejected.class)).extracting(RecordingListener.Rejected::status)
                .containsExactly(403, 426, 426, 400, 400, 400, 400);
        assertThat(backend.upgrades).as("no backend connection").isEmpty();
    }

    @Test
    void answersBackendFailuresAsForAnHttp11Upgrade() throws Exception {
        int closedPort = Clients.closedPort();
        try (RawBackend silent = RawBackend.answering(RawBackend.silent())) {
            mount(builder -> builder
                    .route("/down/", Backend.of("ws://127.0.0.1:" + closedPort))
                    .route("/slow/", r -> r.backends(silent.backend())
                            .timeoutPolicy(TimeoutPolicy.custom().connect(Duration.ofMillis(300)).build())));
            assertThat(open("/down/x").status()).as("backend unreachable").isEqualTo(502);
            assertThat(open("/slow/x").status()).as("backend silent").isEqualTo(504);
            assertThat(silent.nextEnd(10)).isIn("eof", "reset");
        }
        assertThat(listener.all(RecordingListener.Rejected.class)).extracting(RecordingListener.Rejected::status)
                .containsExactly(502, 504);
    }

    @Test
    void runsTheRoutesAuthenticatorAsForAnHttp11Upgrade() throws Exception {
        mount(builder -> builder.route("/ws/", r -> r.backends(backend.backend()).authenticator(Authenticator.of(
                request -> "good".equals(request.queryParameter("token"))
                        ? AuthDecision.allow().withBackendHeader("X-User-Id", "42")
                        : AuthDecision.reject(401).withResponseHeader("WWW-Authenticate", "Bearer realm=\"chat\"")))));
        RawH2WebSocket refused = open("/ws/chat?token=bad");
        assertThat(refused.status()).isEqualTo(401);
        assertThat(refused.head().getHttpFields().get(HttpHeader.WWW_AUTHENTICATE)).isEqualTo("Bearer realm=\"chat\"");
        assertThat(backend.upgrades).isEmpty();

        RawH2WebSocket allowed = open("/ws/chat?token=good").accepted();
        assertThat(backend.upgrades.poll(10, TimeUnit.SECONDS).header("x-user-id")).isEqualTo("42");
        closeFromClient(allowed);
    }

    @Test
    void relaysCloseCodesAndReasonsBothWays() throws Exception {
        mount(builder -> builder.route("/ws/", backend.backend()));
        RawH2WebSocket clientFirst = open("/ws/a").accepted();
        clientFirst.sendClose(4000, "client done");
        assertThat(backend.closes.poll(10, TimeUnit.SECONDS)).isEqualTo(new TestBackend.Closed(4000, "client done"));
        RawFrames.assertCloseFrame(clientFirst.read(), 4100, "backend-reply");
        assertThat(clientFirst.awaitEnd()).isTrue();

        RawH2WebSocket backendFirst = open("/ws/b").accepted();
        backendFirst.sendText("close:4001:backend done");
        RawFrames.assertCloseFrame(backendFirst.read(), 4001, "backend done");
        backendFirst.sendClose(4001, "backend done");
        assertThat(backendFirst.awaitEnd()).isTrue();
    }

    @Test
    void multiplexesTwoWebSocketsOnOneConnection() throws Exception {
        mount(builder -> builder.route("/ws/", backend.backend()));
        Session session = RawH2WebSocket.session(h2, connector.getLocalPort());
        int port = connector.getLocalPort();
        RawH2WebSocket first = RawH2WebSocket.open(session, port, "/ws/one", HttpFields.EMPTY, "13", true).accepted();
        RawH2WebSocket second = RawH2WebSocket.open(session, port, "/ws/two", HttpFields.EMPTY, "13", true).accepted();
        assertThat(connector.getConnectedEndPoints()).as("one h2 connection carries both").hasSize(1);
        assertThat(proxy.sessions()).hasSize(2);
        first.sendText("to one");
        second.sendText("to two");
        assertThat(first.readText()).isEqualTo("to one");
        assertThat(second.readText()).isEqualTo("to two");

        closeFromClient(first);
        await().atMost(Duration.ofSeconds(10)).until(() -> proxy.sessions().size() == 1);
        second.sendText("still there");
        assertThat(second.readText()).as("the other stream goes on").isEqualTo("still there");
        assertThat(connector.getConnectedEndPoints()).hasSize(1);
        closeFromClient(second);
    }

    /**
     * The request-head guard follows HTTP/1 connections only: an h2c connection that began as one (the client's
     * preface read by the HTTP/1.1 factory, which hands the connection over) must not be closed at the guard's deadline
     * while its WebSockets are open.
     */
    @Test
    void keepsHttp2WebSocketsOpenPastTheRequestHeadDeadline() throws Exception {
        mount(builder -> builder.handshakeTimeout(Duration.ofMillis(200)).route("/ws/", backend.backend()));
        RawH2WebSocket ws = open("/ws/chat").accepted();
        await().during(Duration.ofSeconds(1)).atMost(Duration.ofSeconds(2))
                .until(() -> ws.stream.getSession().getStreams().size() == 1);
        ws.sendText("still open");
        assertThat(ws.readText()).isEqualTo("still open");
        closeFromClient(ws);
    }

    /**
     * A plain request over HTTP/2 whose {@code :method} is not a token is refused with 400, and its access line escapes
     * the method's spaces. An HTTP/1 parser admits only a token, but an h2 field value may hold spaces, and Jetty's
     * client wrote the method into the backend's request line as it was: {@code GET /admin?} on {@code /api/x} reached
     * the backend as {@code GET /ADMIN? /api/x HTTP/1.1}, a target the route never saw, and the access line read
     * {@code method=GET /admin? status=...}.
     */
    @Test
    void refusesAPlainRequestWhoseMethodIsNotATokenWith400() throws Exception {
        String ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        try (RawBackend plain = RawBackend.answering(RawBackend.raw(ok));
                StandardError.Capture log = StandardError.capture()) {
            Session session = mountPlainTo(plain);
            assertThat(plainStatus(session, "GET /admin?", "/api/x")).isEqualTo(400);
            assertThat(plainStatus(session, "GET", "/api/y")).as("a valid request after it").isEqualTo(200);

            assertThat(plain.nextRequest().head()).as("the backend's first request").startsWith("GET /api/y HTTP/1.1");
            assertThat(listener.all(RecordingListener.Rejected.class)).containsExactly(
                    new RecordingListener.Rejected("/api/", "/api/x", 400, "method is not a token"));
            await().untilAsserted(() -> assertThat(log.text()).containsPattern(
                    " dev\\.wsproxy\\.access - sid=- .* method=GET\\\\u0020/admin\\? status=400 reason=bad_request\n"));
        }
    }

    /**
     * A request whose HEADERS frame ends its stream but whose {@code content-length} announces a body: Jetty's HTTP/2
     * server checks DATA frames against that length, not a stream that ends without any. Jetty's client wrote the
     * length to the backend and no body, the backend answered, and the next request on that connection went into what
     * the backend reads as the missing body (an H2.CL desync: a request smuggled past the route and its hooks).
     */
    @Test
    void refusesAPlainRequestWhoseBodyEndsShortOfItsContentLengthWith400() throws Exception {
        String ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        try (RawBackend plain = RawBackend.answering(RawBackend.raw(ok))) {
            Session session = mountPlainTo(plain);
            assertThat(plainStatus(session, "POST", "/api/x", HttpFields.build().put(HttpHeader.CONTENT_LENGTH, "20")))
                    .isEqualTo(400);
            assertThat(plainStatus(session, "GET", "/api/y")).as("a valid request after it").isEqualTo(200);

            assertThat(plain.nextRequest().head()).as("the backend's first request").startsWith("GET /api/y HTTP/1.1");
            assertThat(listener.all(RecordingListener.Rejected.class)).containsExactly(
                    new RecordingListener.Rejected("/api/", "/api/x", 400, "malformed request body"));
        }
    }

    @Test
    void forwardsTheBodyOfAPlainRequestThatHasNoContentLength() throws Exception {
        // A streaming upload (fetch with a ReadableStream body): HTTP/2 has no Transfer-Encoding, and its length is
        // unknown when it starts.
        String ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        try (RawBackend plain = RawBackend.readingBodies(RawBackend.raw(ok))) {
            Session session = mountPlainTo(plain);
            assertThat(plainStatus(session, "POST", "/api/upload", HttpFields.EMPTY, "hello")).isEqualTo(200);
            assertThat(plain.bodies.poll(10, TimeUnit.SECONDS)).as("the body the backend read").isEqualTo("hello");
            assertThat(plain.nextRequest().requestLine()).isEqualTo("POST /api/upload HTTP/1.1");

            // A request whose head ends its stream has no body, and gets none.
            assertThat(plainStatus(session, "GET", "/api/page")).isEqualTo(200);
            RawBackend.Request get = plain.nextRequest();
            assertThat(get.requestLine()).isEqualTo("GET /api/page HTTP/1.1");
            assertThat(get.header("Transfer-Encoding")).isNull();
            assertThat(get.header("Content-Length")).isNull();
        }
    }

    /** Sends a plain request on {@code session} and returns its status. */
    private int plainStatus(Session session, String method, String path) throws Exception {
        return plainStatus(session, method, path, HttpFields.EMPTY);
    }

    /** Sends a plain request with {@code headers} and no body on {@code session} and returns its status. */
    private int plainStatus(Session session, String method, String path, HttpFields headers) throws Exception {
        return plainStatus(session, method, path, headers, null);
    }

    /**
     * Sends a plain request with {@code headers} on {@code session} and returns its status: with no body when
     * {@code body} is {@code null} (its HEADERS frame ends the stream), else with {@code body} in one DATA frame that
     * ends it, and no {@code content-length} unless {@code headers} has one (a streaming upload).
     */
    private int plainStatus(Session session, String method, String path, HttpFields headers, @Nullable String body)
            throws Exception {
        CompletableFuture<Integer> status = new CompletableFuture<>();
        Stream stream = plainStream(session, method, path, headers, body == null, status);
        if (body != null) {
            stream.data(new DataFrame(stream.getId(), ByteBuffer.wrap(body.getBytes(StandardCharsets.UTF_8)), true))
                    .get(10, TimeUnit.SECONDS);
        }
        return status.get(10, TimeUnit.SECONDS);
    }

    /**
     * Opens the stream of a plain request with {@code headers} on {@code session}, its HEADERS frame ending it when
     * {@code endStream}; {@code status} completes with the response's status.
     */
    private Stream plainStream(Session session, String method, String path, HttpFields headers, boolean endStream,
            CompletableFuture<Integer> status) throws Exception {
        MetaData.Request request = new MetaData.Request(method,
                HttpURI.build("http://127.0.0.1:" + connector.getLocalPort() + path), HttpVersion.HTTP_2, headers);
        return session.newStream(new HeadersFrame(request, null, endStream), new Stream.Listener() {
            @Override
            public void onHeaders(Stream stream, HeadersFrame frame) {
                if (frame.getMetaData() instanceof MetaData.Response response) {
                    status.complete(response.getStatus());
                }
            }
        }).get(10, TimeUnit.SECONDS);
    }

    /**
     * An HTTP/2 client that resets the stream of a plain request while it waits for the backend's answer (a long poll
     * given up, a {@code fetch} aborted, a page left) ends the request to the backend at once, and is logged as gone
     * ({@code 499 client_left}), not refused. A reset ends the stream only, not the connection, and nothing is being
     * read from the client or written to it then: Jetty tells the request's failure listeners. Before, the proxy went
     * on waiting: the backend connection stayed open, its request pending, until the backend answered or the route's
     * idle timeout (an hour by default) passed.
     */
    @Test
    void endsTheBackendRequestOfAPlainRequestWhoseClientResetsItsStream() throws Exception {
        String ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        try (RawBackend silent = RawBackend.answering(RawBackend.silent());
                RawBackend answering = RawBackend.answering(RawBackend.raw(ok));
                StandardError.Capture log = StandardError.capture()) {
            mount(builder -> builder
                    .route("/poll/", r -> r.backends(silent.backend()).plainHttp(PlainHttp.PROXY_TO_BACKEND))
                    .route("/api/", r -> r.backends(answering.backend()).plainHttp(PlainHttp.PROXY_TO_BACKEND)));
            Session session = RawH2WebSocket.session(h2, connector.getLocalPort());
            CompletableFuture<Integer> status = new CompletableFuture<>();
            Stream stream = plainStream(session, "GET", "/poll/wait", HttpFields.EMPTY, true, status);
            assertThat(silent.nextRequest().requestLine()).isEqualTo("GET /poll/wait HTTP/1.1");
            stream.reset(new ResetFrame(stream.getId(), ErrorCode.CANCEL_STREAM_ERROR.code)).get(10, TimeUnit.SECONDS);

            assertThat(silent.nextEnd(10)).as("the backend connection, closed at once").isIn("eof", "reset");
            await().untilAsserted(() -> assertThat(log.text()).containsPattern(
                    " dev\\.wsproxy\\.access - .* method=GET status=499 reason=client_left\n"));
            assertThat(listener.all(RecordingListener.Rejected.class)).as("not a refusal").isEmpty();
            assertThat(status).as("no response").isNotDone();
            assertThat(plainStatus(session, "GET", "/api/next")).as("the connection's next stream").isEqualTo(200);
        }
    }

    /**
     * An HTTP/2 client that resets the stream of a plain request during its upload is logged as gone
     * ({@code 499 client_left}) and not reported as a refusal, as an HTTP/1.1 client that resets its connection during
     * its body is ({@code PlainHttpTest.logsAClientThatLeavesDuringItsRequestBodyAsGone}), and the backend is not
     * blamed. A reset ends the stream, not the connection, and fails the body's read. Before, listeners heard
     * {@code 400 malformed request body}, a refusal no one received, while the access line said {@code client_left}.
     */
    @Test
    void logsAClientThatResetsItsStreamDuringAPlainUploadAsGone() throws Exception {
        String ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        try (RawBackend plain = RawBackend.readingBodies(RawBackend.raw(ok));
                StandardError.Capture log = StandardError.capture()) {
            Session session = mountPlainTo(plain);
            CompletableFuture<Integer> status = new CompletableFuture<>();
            Stream stream = plainStream(session, "POST", "/api/upload", HttpFields.EMPTY, false, status);
            stream.data(new DataFrame(stream.getId(), ByteBuffer.wrap("hel".getBytes(StandardCharsets.UTF_8)), false))
                    .get(10, TimeUnit.SECONDS);
            assertThat(plain.nextRequest().requestLine()).as("the forward began")
                    .isEqualTo("POST /api/upload HTTP/1.1");
            stream.reset(new ResetFrame(stream.getId(), ErrorCode.CANCEL_STREAM_ERROR.code)).get(10, TimeUnit.SECONDS);

            await().untilAsserted(() -> assertThat(log.text()).containsPattern(
                    " dev\\.wsproxy\\.access - .* method=POST status=499 reason=client_left\n"));
            assertThat(listener.all(RecordingListener.Rejected.class)).as("no refusal that no one received").isEmpty();
            assertThat(proxy.backendStatus("/api/").get(0).recentFailures()).as("not the backend's failure").isZero();
            assertThat(status).as("no response").isNotDone();
        }
    }

    /**
     * A client that resets its stream while an asynchronous authenticator decides ends the wait at once (499, its
     * slot given back), as on HTTP/1.1, and the connection's other streams go on: the stream is watched, never the
     * socket, which carries them. Before, the authentication watched the shared socket of the proxy's connector (none
     * behind a plain one), and the reset was then missed by the failure listener the backend handshake added after it:
     * the backend saw a session open and close, and 499 came only when the 200 could not be written.
     */
    @ParameterizedTest(name = "{0} connector")
    @ValueSource(strings = {"proxy's", "plain"})
    void reportsAClientGoneDuringAuthenticationOnceAs499AndKeepsItsConnection(String kind) throws Exception {
        BlockingQueue<CompletableFuture<AuthDecision>> pending = new LinkedBlockingQueue<>();
        mount(kind, builder -> builder.maxConnectionsPerIp(1).route("/ws/", r -> r.backends(backend.backend())
                .authenticator(request -> {
                    CompletableFuture<AuthDecision> decision = new CompletableFuture<>();
                    pending.add(decision);
                    return decision;
                })));
        int port = connector.getLocalPort();
        Session session = RawH2WebSocket.session(h2, port);
        RawH2WebSocket waiting = RawH2WebSocket.open(session, port, "/ws/chat", HttpFields.EMPTY, "13", true);
        CompletableFuture<AuthDecision> decision = pending.poll(10, TimeUnit.SECONDS);
        assertThat(decision).as("the authenticator was asked").isNotNull();
        waiting.reset();

        await().untilAsserted(() -> assertThat(listener.all(RecordingListener.Rejected.class))
                .containsExactly(new RecordingListener.Rejected("/ws/", "/ws/chat", 499,
                        "client connection closed during authentication")));
        // Completed on this thread, the decision's dependents run here: had it gone on, a backend handshake slot
        // would be taken now.
        decision.complete(AuthDecision.allow());
        assertThat(((WebSocketProxyHandler) proxy.handler()).held()).as("what the late decision left")
                .isEqualTo(new WebSocketProxyHandler.Held(0, 0, 0, 0));

        RawH2WebSocket next = RawH2WebSocket.open(session, port, "/ws/next", HttpFields.EMPTY, "13", true);
        pending.poll(10, TimeUnit.SECONDS).complete(AuthDecision.allow());
        next.accepted();
        assertThat(backend.upgrades.poll(10, TimeUnit.SECONDS).pathQuery()).isEqualTo("/ws/next");
        next.sendText("after the reset");
        assertThat(next.readText()).as("the connection's next stream").isEqualTo("after the reset");
        closeFromClient(next);
        assertThat(backend.upgrades).as("the backend's only upgrade").isEmpty();
        assertThat(listener.all(RecordingListener.Rejected.class)).as("reported once").hasSize(1);
    }

    /**
     * A client that leaves while the backend handshake is pending ends it at once, as on HTTP/1.1, where the proxy
     * watches the client's socket; here the stream is watched, not the socket, which carries other streams.
     */
    @ParameterizedTest(name = "client {1}, {0} connector")
    @CsvSource({"proxy's, resets its stream", "proxy's, closes its connection", "plain, resets its stream",
            "plain, closes its connection"})
    void reportsAClientGoneDuringTheBackendHandshakeOnceAs499(String kind, String how) throws Exception {
        try (RawBackend silent = RawBackend.answering(RawBackend.silent())) {
            mount(kind, builder -> builder.timeoutPolicy(TimeoutPolicy.custom().connect(Duration.ofMinutes(1)).build())
                    .route("/ws/", r -> r.backends(silent.backend()).maxPendingBackendHandshakes(1)));
            RawH2WebSocket pending = open("/ws/chat");
            silent.nextRequest();
            if (how.equals("resets its stream")) {
                pending.reset();
            } else {
                pending.disconnect();
            }

            assertThat(silent.nextEnd(20)).as("the backend connection, closed long before its timeout")
                    .isIn("eof", "reset");
            await().untilAsserted(() -> assertThat(listener.all(RecordingListener.Rejected.class))
                    .containsExactly(new RecordingListener.Rejected("/ws/", "/ws/chat", 499,
                            "client connection closed before the backend answered")));
            assertThat(listener.all(RecordingListener.ConnectFailed.class)).isEmpty();
            assertThat(proxy.backendStatus("/ws/").get(0).recentFailures()).isZero();
            Clients.assertNoLeaks(proxy, null);

            // The backend's one handshake slot was given back: the next stream's handshake reaches it.
            RawH2WebSocket next = open("/ws/next");
            assertThat(silent.nextRequest().head()).startsWith("GET /ws/next ");
            assertThat(listener.all(RecordingListener.Rejected.class)).as("reported once").hasSize(1);
            next.reset();
            assertThat(silent.nextEnd(20)).isIn("eof", "reset");
            await().untilAsserted(() -> assertThat(listener.all(RecordingListener.Rejected.class))
                    .extracting(RecordingListener.Rejected::status).containsExactly(499, 499));
        }
    }

    /**
     * HTTP/2 flow control holds the backend back when the client does not read: the proxy's writes to the stream wait
     * for the client's window, and the proxy stops reading the backend meanwhile, as TCP holds it on HTTP/1.1.
     */
    @Test
    void holdsBackTheBackendWhileTheHttp2ClientDoesNotRead() throws Exception {
        mount(builder -> builder.route("/ws/", backend.backend()));
        int messages = 1024;
        int size = 64 * 1024;
        RawH2WebSocket reader = RawH2WebSocket.open(RawH2WebSocket.session(h2, connector.getLocalPort()),
                connector.getLocalPort(), "/ws/push", HttpFields.EMPTY, "13", false).accepted();
        reader.sendText("push:" + messages + ":" + size);

        long stalledAt = backend.awaitPushStalled();
        assertThat(stalledAt).as("bytes the backend could send to an HTTP/2 client that reads nothing")
                .isLessThan(32L * 1024 * 1024);

        reader.startReading();
        long received = 0;
        int fins = 0;
        while (received < (long) messages * size) {
            RawFrames.Frame frame = reader.read();
            received += frame.payload().length;
            fins += frame.fin() ? 1 : 0;
        }
        assertThat(received).isEqualTo((long) messages * size);
        assertThat(fins).isEqualTo(messages);
        closeFromClient(reader);
    }

    /**
     * A session whose client reads nothing is dropped at the drain deadline; on HTTP/2 that must reach the client as
     * the end of its stream (a reset). Before, the proxy only forgot the stream: the client kept it open, and the
     * session, its write pending for good, stayed in {@code sessions()} until the server stopped.
     */
    @Test
    void resetsANonReadingHttp2ClientsStreamAtTheDrainDeadline() throws Exception {
        mount(builder -> builder.route("/ws/", backend.backend()));
        int port = connector.getLocalPort();
        Session session = RawH2WebSocket.session(h2, port);
        RawH2WebSocket stalled = RawH2WebSocket.open(session, port, "/ws/push", HttpFields.EMPTY, "13", false)
                .accepted();
        stalled.sendText("push:1024:65536");
        backend.awaitPushStalled();

        proxy.stop(Duration.ofMillis(200));
        assertThat(stalled.awaitEnd()).as("the client's stream, reset").isFalse();
        // The stream alone: the connection goes on, and a new stream on it gets the stopped proxy's 503.
        assertThat(RawH2WebSocket.open(session, port, "/ws/next", HttpFields.EMPTY, "13", true).status())
                .as("a new stream on the same connection").isEqualTo(503);
        Clients.assertNoLeaks(proxy, null);
    }

    /**
     * A client that reads nothing while it keeps its stream busy (a heartbeat thread's ping every 20 ms while its
     * reader is stuck) is dropped once a write to it has waited for the write timeout, as on HTTP/1.1
     * ({@link SendingNonReaderTest}): its stream reset, the backend closed as for a socket, the access line's reason
     * and status (200, the answer the client got; the line said 101).
     * Before, nothing found it: its frames kept the stream from being idle (the stream's idle timeout counts what the
     * client sends) or quiet enough to be pinged, and the write timeout had no write flusher to ask; the session, and
     * the backend's output held back behind it, lived for as long as the client sent.
     */
    @ParameterizedTest(name = "pings {0}")
    @CsvSource({"off, 1000, idle timeout, write_timeout", "200 ms, 400, client not responding, client_unresponsive"})
    void dropsAnHttp2ClientThatPingsButReadsNothing(String pings, long timeoutMillis, String reason, String token)
            throws Exception {
        TimeoutPolicy policy = pings.equals("off") ? TimeoutPolicy.idle(Duration.ofMillis(timeoutMillis))
                : TimeoutPolicy.custom().ping(Duration.ofMillis(timeoutMillis / 2)).idle(Duration.ofHours(1)).build();
        mount(builder -> builder.timeoutPolicy(policy).route("/ws/", backend.backend()));
        ScheduledExecutorService pacer = Executors.newSingleThreadScheduledExecutor();
        try (StandardError.Capture log = StandardError.capture()) {
            RawH2WebSocket stalled = RawH2WebSocket.open(RawH2WebSocket.session(h2, connector.getLocalPort()),
                    connector.getLocalPort(), "/ws/push", HttpFields.EMPTY, "13", false).accepted();
            stalled.sendText("push:1024:65536");
            long beatingSince = System.nanoTime();
            CompletableFuture<Void> beating = heartbeat(pacer, stalled);

            assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(1001, reason));
            assertThat(Duration.ofNanos(System.nanoTime() - beatingSince)).as("the verdict, no sooner than the timeout")
                    .isGreaterThanOrEqualTo(Duration.ofMillis(timeoutMillis));
            assertThat(stalled.awaitEnd()).as("the client's stream, reset").isFalse();
            assertThat(beating).as("the client's heartbeats, once its stream is reset")
                    .failsWithin(Duration.ofSeconds(10));
            await().atMost(Duration.ofSeconds(10)).until(() -> log.text().contains(" dev.wsproxy.access - "));
            assertThat(log.text().lines().filter(line -> line.contains(" dev.wsproxy.access - ")))
                    .singleElement().asString()
                    .endsWith(" first=proxy status=200 proxy_close=- reason=" + token);
        } finally {
            pacer.shutdownNow();
        }
    }

    /**
     * Sends {@code ws} a ping every 20 ms on {@code pacer}, at most 1,500 (30 s); the future fails with the first
     * send that fails.
     */
    private static CompletableFuture<Void> heartbeat(ScheduledExecutorService pacer, RawH2WebSocket ws) {
        CompletableFuture<Void> beating = new CompletableFuture<>();
        byte[] ping = RawFrames.encode(RawFrames.PING, "heartbeat".getBytes(StandardCharsets.US_ASCII), true);
        int[] beats = {0};
        pacer.scheduleAtFixedRate(() -> {
            try {
                if (beats[0]++ == 1500) {
                    beating.complete(null);
                } else {
                    ws.send(ping);
                    return;
                }
            } catch (Exception e) {
                beating.completeExceptionally(e);
            }
            throw new IllegalStateException("done"); // no further runs
        }, 0, 20, TimeUnit.MILLISECONDS);
        return beating;
    }
}
