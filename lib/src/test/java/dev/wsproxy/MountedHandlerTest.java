package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.tuple;
import static org.awaitility.Awaitility.await;

import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;

import org.eclipse.jetty.http.CookieCompliance;
import org.eclipse.jetty.http.UriCompliance;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.component.LifeCycle;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import dev.wsproxy.internal.WebSocketProxyHandler;

/** The proxy mounted as a Handler in a user's own Server, in front of the user's application handler. */
class MountedHandlerTest {

    private TestBackend backend;
    private WebSocketProxy proxy;
    private Server server;
    private ServerConnector connector;
    private Clients clients;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        clients = new Clients();
        mount(ProxyBuilder.create()
                .route("/ws/", r -> r.backends(backend.backend()).plainHttp(PlainHttp.NEXT_HANDLER)));
    }

    /** Builds the proxy and mounts it in a started server of the test's, in front of an application handler. */
    private void mount(ProxyBuilder builder) throws Exception {
        // The connector the proxy recommends for mounting: WebSocket frames relayed on the selector threads.
        mount(builder, WebSocketProxy::serverConnector);
    }

    /** {@link #mount(ProxyBuilder)} behind a connector of the test's choosing. */
    private void mount(ProxyBuilder builder, Function<Server, ServerConnector> connectorFactory) throws Exception {
        proxy = builder.build();
        server = new Server(WebSocketProxy.threadPool());
        connector = connectorFactory.apply(server);
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        Handler.Wrapper proxyHandler = proxy.handler();
        proxyHandler.setHandler(new Handler.Abstract() {
            @Override
            public boolean handle(Request request, Response response, Callback callback) {
                response.write(true, ByteBuffer.wrap(("app:" + Request.getPathInContext(request))
                        .getBytes(StandardCharsets.UTF_8)), callback);
                return true;
            }
        });
        server.setHandler(proxyHandler);
        server.start();
    }

    @AfterEach
    void stop() throws Exception {
        try {
            Clients.assertNoLeaks(proxy, clients, backend);
        } finally {
            clients.close();
            server.stop();
            backend.close();
        }
    }

    private URI uri(String scheme, String path) {
        return URI.create(scheme + "://127.0.0.1:" + connector.getLocalPort() + path);
    }

    @Test
    void proxiesUpgradesAndPassesEverythingElseToTheApplication() throws Exception {
        WsRecorder client = clients.connect(uri("ws", "/ws/chat"));
        client.sendText("whoami");
        assertThat(client.nextText()).isEqualTo("b1");
        client.session.close();
        assertThat(client.nextClose().code()).isEqualTo(1000);

        HttpClient http = HttpClient.newHttpClient();
        HttpResponse<String> page = http.send(HttpRequest.newBuilder(uri("http", "/index.html")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(page.body()).isEqualTo("app:/index.html");
        HttpResponse<String> onRoute = http.send(HttpRequest.newBuilder(uri("http", "/ws/status")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(onRoute.body()).as("plain HTTP on the route goes to the app with NEXT_HANDLER")
                .isEqualTo("app:/ws/status");
        assertThat(backend.httpConnections.get()).as("only the WebSocket reached the backend").isEqualTo(1);
    }

    @Test
    void logsTheSessionsAServerStopDropsAsEndedByTheProxy() throws Exception {
        // The user's server stopped without proxy.stop() and without a stop timeout drops every connection: the
        // access lines read first=client proxy_close=- reason=-, a peer's end.
        WsRecorder client = clients.connect(uri("ws", "/ws/chat"));
        await().atMost(Duration.ofSeconds(10)).until(() -> proxy.sessions().size() == 1);
        String id = proxy.sessions().get(0).id();
        try (StandardError.Capture log = StandardError.capture()) {
            server.stop();
            // Dropped without a close frame; or, when Jetty dropped the backend's connection first, told what a
            // graceful stop says (it was told 1014, backend lost, and the full suite once saw it), which the line then
            // names (logsThe1001TheClientGotWhenTheServerStopDropsTheBackendsConnectionFirst).
            int code = client.nextClose().code();
            assertThat(code).as("dropped, or told the proxy is going away").isIn(1006, 1001);
            String proxyClose = code == 1001 ? "1001" : "(-|1001)";
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(log.text())
                    .containsPattern(" dev\\.wsproxy\\.access - sid=" + id + " .* first=proxy status=101 "
                            + "proxy_close=" + proxyClose + " reason=shutdown\n"));
        }
    }

    @Test
    void logsThe1001TheClientGotWhenTheServerStopDropsTheBackendsConnectionFirst() throws Exception {
        // The user's server stopped without a stop timeout, its backend connection dropped before its client's: the
        // client was told 1001, what a graceful stop says, and the access line read proxy_close=-, as for a client
        // dropped without a close frame.
        AtomicReference<Socket> backendSocket = new AtomicReference<>();
        try (RawBackend raw = RawBackend.upgradingThen((socket, out) -> backendSocket.set(socket))) {
            server.stop();
            mount(ProxyBuilder.create().route("/ws/", raw.backend()));
            WsRecorder client = clients.connect(uri("ws", "/ws/chat"));
            await().atMost(Duration.ofSeconds(10))
                    .until(() -> proxy.sessions().size() == 1 && backendSocket.get() != null);
            String id = proxy.sessions().get(0).id();
            // After the proxy's own listener, which the server's start added: the stop is the proxy's end by then.
            AtomicReference<WsRecorder.Closed> toldBeforeTheConnectorsStop = new AtomicReference<>();
            server.addEventListener(new LifeCycle.Listener() {
                @Override
                public void lifeCycleStopping(LifeCycle event) {
                    try {
                        backendSocket.get().close();
                        toldBeforeTheConnectorsStop.set(client.nextClose());
                    } catch (Exception e) {
                        throw new AssertionError(e);
                    }
                }
            });
            try (StandardError.Capture log = StandardError.capture()) {
                server.stop();
                assertThat(toldBeforeTheConnectorsStop.get())
                        .isEqualTo(new WsRecorder.Closed(1001, "proxy shutting down"));
                await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(log.text())
                        .containsPattern(" dev\\.wsproxy\\.access - sid=" + id + " .* first=proxy status=101 "
                                + "proxy_close=1001 reason=shutdown\n"));
            }
        }
    }

    @Test
    void givesBackTheSlotOfADecisionPendingAsTheServerStopsBehindAConnectorThatCannotWatchItsClient()
            throws Exception {
        // Behind a plain connector nothing notices the client leave, and the authenticator's timer went with the
        // server's scheduler: a decision that never came held its connection slot through the restart, and the
        // address got 429 for good.
        remountWithAnAuthenticatorThatNeverDecides(ProxyBuilder.create(), ServerConnector::new);
        try (Socket client = upgradeWaitingForItsDecision()) {
            server.stop();
        }
        assertThat(((WebSocketProxyHandler) proxy.handler()).held()).as("held after the server's stop")
                .isEqualTo(new WebSocketProxyHandler.Held(0, 0, 0, 0));

        server.start();
        try (RawHttpExchange exchange = RawHttpExchange.upgrade(connector.getLocalPort(), "/ws/chat")) {
            assertThat(exchange.statusLine()).as("the address's one slot after the restart").startsWith("HTTP/1.1 101");
        }
    }

    @Test
    void answers503ToADecisionPendingAsTheServerStopsWithoutAStopTimeout() throws Exception {
        // The server's stop closed the waiting client's connection with no answer before the handler stopped, and
        // listeners heard 499, a client that left, of a client the server dropped.
        RecordingListener recorded = new RecordingListener();
        remountWithAnAuthenticatorThatNeverDecides(ProxyBuilder.create().listener(recorded),
                WebSocketProxy::serverConnector);
        try (Socket client = upgradeWaitingForItsDecision()) {
            server.stop();
            String head = new String(client.getInputStream().readNBytes(64), StandardCharsets.ISO_8859_1);
            assertThat(head).startsWith("HTTP/1.1 503");
        }
        assertThat(recorded.all(RecordingListener.Rejected.class)).containsExactly(
                new RecordingListener.Rejected("/slow/", "/slow/chat", 503, "proxy is shutting down"));
    }

    /**
     * Mounts anew, with one slot per address, a route {@code /slow/} whose authenticator never decides (the connect
     * timeout, its deadline, a minute) and {@code /ws/}.
     */
    private void remountWithAnAuthenticatorThatNeverDecides(ProxyBuilder builder,
            Function<Server, ServerConnector> connectorFactory) throws Exception {
        server.stop();
        mount(builder.maxConnectionsPerIp(1)
                .route("/slow/", r -> r.backends(backend.backend()).authenticator(request -> new CompletableFuture<>())
                        .timeoutPolicy(TimeoutPolicy.custom().connect(Duration.ofMinutes(1)).build()))
                .route("/ws/", backend.backend()), connectorFactory);
    }

    /** Sends an upgrade to {@code /slow/chat}; returns once it holds its slot, its decision pending. */
    private Socket upgradeWaitingForItsDecision() throws Exception {
        Socket client = new Socket("127.0.0.1", connector.getLocalPort());
        client.setSoTimeout(10_000);
        client.getOutputStream().write(("GET /slow/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                + "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        await().atMost(Duration.ofSeconds(10)).until(() -> ((WebSocketProxyHandler) proxy.handler()).held()
                .connectionSlots() == 1);
        return client;
    }

    @Test
    void closesItsSessionsWith1001WhenTheServerStopsGracefullyAndServesAgainAfterARestart() throws Exception {
        // A server stopped with a stop timeout waits for its Graceful components, as Jetty's own WebSocket container,
        // which sends 1001: the proxy was none, and its server dropped every session without a close frame.
        server.setStopTimeout(10_000);
        WsRecorder client = clients.connect(uri("ws", "/ws/chat"));
        await().atMost(Duration.ofSeconds(10)).until(() -> proxy.sessions().size() == 1);
        String id = proxy.sessions().get(0).id();
        try (StandardError.Capture log = StandardError.capture()) {
            server.stop();
            assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1001, "proxy shutting down"));
            assertThat(backend.closes.poll(10, TimeUnit.SECONDS))
                    .isEqualTo(new TestBackend.Closed(1001, "proxy shutting down"));
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(log.text())
                    .containsPattern(" dev\\.wsproxy\\.access - sid=" + id + " .* first=proxy status=101 "
                            + "proxy_close=1001 reason=shutdown\n"));
        }

        server.start();
        WsRecorder again = clients.connect(uri("ws", "/ws/chat"));
        again.sendText("whoami");
        assertThat(again.nextText()).as("served after the restart").isEqualTo("b1");
        again.session.close();
        assertThat(again.nextClose().code()).isEqualTo(1000);
    }

    @ParameterizedTest(name = "{0}: {1}")
    @CsvSource(delimiter = '|', value = {
            // A space in a value, as a third-party script may set: refused by the strict parse.
            "RFC6265_STRICT | theme=dark blue; session=abc",
            // An obsolete attribute whose value is no number: Jetty's parse fails with a NumberFormatException.
            "RFC2965 | $Version=abc; session=abc"})
    void readsACookieKeyUnderTheServersCookieComplianceAsUnderTheDefaultOneWhenItsParseFails(String compliance,
            String cookies) throws Exception {
        // A server of the user's whose cookie compliance refuses a Cookie header the default one reads: Jetty's parse
        // threw in the selector's key, and every upgrade with such a cookie got 500 selector_failed and a WARN with a
        // stack trace, the client's header blamed on the selector. The key is read as the default compliance reads
        // it; the header goes to the backend as it came.
        server.stop();
        Queue<String> keys = new ConcurrentLinkedQueue<>();
        Function<SelectionContext, String> session = HashKeys.cookie("session");
        mount(ProxyBuilder.create().route("/ws/", r -> r.backends(backend.backend())
                .backendSelector(BackendSelector.consistentHash(context -> {
                    String key = session.apply(context);
                    keys.add(String.valueOf(key));
                    return key;
                }))), configured -> {
                    HttpConfiguration http = new HttpConfiguration();
                    http.setRequestCookieCompliance(CookieCompliance.valueOf(compliance));
                    return WebSocketProxy.serverConnector(configured, new HttpConnectionFactory(http));
                });

        try (RawHttpExchange exchange = RawHttpExchange.upgradeFrom(null, connector.getLocalPort(), "/ws/x",
                "Cookie: " + cookies)) {
            assertThat(exchange.statusLine()).startsWith("HTTP/1.1 101");
        }
        assertThat(keys).as("the key the selector read").containsExactly("abc");
        assertThat(backend.nextUpgrade().header("Cookie")).isEqualTo(cookies);
    }

    @Test
    void refusesAPathNoBackendUriCanCarryWith400AndReportsIt() throws Exception {
        // A server of the user's whose URI compliance lets a | into a path, which java.net.URI refuses: the backend's
        // URI cannot be made. The 400 went to the access log alone, not to the listeners as every other refusal.
        server.stop();
        RecordingListener recorded = new RecordingListener();
        mount(ProxyBuilder.create().route("/ws/", backend.backend()).listener(recorded), lenient -> {
            HttpConfiguration http = new HttpConfiguration();
            http.setUriCompliance(UriCompliance.UNSAFE);
            return WebSocketProxy.serverConnector(lenient, new HttpConnectionFactory(http));
        });

        for (boolean upgrade : new boolean[] {false, true}) {
            try (RawHttpExchange exchange = upgrade ? RawHttpExchange.upgrade(connector.getLocalPort(), "/ws/a|b")
                    : RawHttpExchange.send(connector.getLocalPort(),
                            "GET /ws/a|b HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")) {
                assertThat(exchange.statusLine()).as("upgrade %s", upgrade).startsWith("HTTP/1.1 400");
            }
        }
        assertThat(recorded.all(RecordingListener.Rejected.class)).as("plain HTTP, then the upgrade")
                .extracting(RecordingListener.Rejected::status, RecordingListener.Rejected::reason)
                .containsExactly(tuple(400, "request path cannot be forwarded"),
                        tuple(400, "request path cannot be forwarded"));
    }

    @Test
    void refusesASecondServerWhileTheFirstHoldsTheHandlerAndMovesOnceTakenOut() throws Exception {
        // One handler in two servers: Jetty said only STARTED while the first ran, and once it was stopped the handler
        // moved without a word; the first server, started again, then served with a handler of the second's.
        Server second = new Server(WebSocketProxy.threadPool());
        ServerConnector secondConnector = WebSocketProxy.serverConnector(second);
        secondConnector.setHost("127.0.0.1");
        second.addConnector(secondConnector);
        try {
            assertThatThrownBy(() -> second.setHandler(proxy.handler())).as("the first server running")
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageStartingWith("the wsproxy handler is mounted in " + server)
                    .hasMessageContaining("one server per proxy");
            server.stop();
            assertThatThrownBy(() -> second.setHandler(proxy.handler())).as("the first server stopped, holding it")
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageStartingWith("the wsproxy handler is mounted in " + server);

            server.setHandler((Handler) null);
            second.setHandler(proxy.handler());
            second.start();
            try (RawHttpExchange exchange = RawHttpExchange.upgrade(secondConnector.getLocalPort(), "/ws/moved")) {
                assertThat(exchange.statusLine()).as("served by the server it moved to").startsWith("HTTP/1.1 101");
            }
            await().atMost(Duration.ofSeconds(10)).until(() -> proxy.sessions().isEmpty());
        } finally {
            second.stop();
        }
    }

    @Test
    void drainsAMountedProxyWithoutStoppingTheServer() throws Exception {
        WsRecorder client = clients.connect(uri("ws", "/ws/chat"));
        proxy.stop(Duration.ofSeconds(5));
        assertThat(client.nextClose().code()).isEqualTo(1001);
        assertThat(server.isRunning()).isTrue();
        try (RawHttpExchange exchange = RawHttpExchange.upgrade(connector.getLocalPort(), "/ws/x")) {
            assertThat(exchange.statusLine()).as("new upgrades are refused while draining")
                    .startsWith("HTTP/1.1 503");
            assertThat(exchange.head()).containsIgnoringCase("Retry-After: 5");
        }
        HttpResponse<String> page = HttpClient.newHttpClient().send(HttpRequest.newBuilder(uri("http", "/page"))
                .build(), HttpResponse.BodyHandlers.ofString());
        assertThat(page.body()).as("the application keeps serving").isEqualTo("app:/page");
    }

    @Test
    void aStoppedProxyStopsProbingAndStaysStoppedWhenTheServerRestarts() throws Exception {
        // stop() only drained a mounted proxy: its health checks went on probing the backends until the server stopped,
        // and the server's next start reset the handler, which answered upgrades with 101 again.
        server.stop();
        mount(ProxyBuilder.create()
                .route("/ws/", r -> r.backends(backend.backend()).plainHttp(PlainHttp.NEXT_HANDLER))
                .healthCheck(HealthCheck.webSocket("/health").interval(Duration.ofMillis(50))));
        await().atMost(Duration.ofSeconds(10)).until(() -> backend.upgrades.size() >= 2);

        proxy.stop(Duration.ZERO);
        long stoppedAt = System.nanoTime();
        // One probe in flight at the stop may still arrive (one per backend at a time); ten intervals see no other.
        await().during(Duration.ofMillis(500)).atMost(Duration.ofSeconds(5))
                .until(() -> probesSince(stoppedAt) <= 1);

        server.stop();
        server.start();
        long restartedAt = System.nanoTime();
        try (RawHttpExchange exchange = RawHttpExchange.upgrade(connector.getLocalPort(), "/ws/x")) {
            assertThat(exchange.statusLine()).as("an upgrade to the stopped proxy, its server restarted")
                    .startsWith("HTTP/1.1 503");
        }
        HttpResponse<String> page = HttpClient.newHttpClient().send(HttpRequest.newBuilder(uri("http", "/page"))
                .build(), HttpResponse.BodyHandlers.ofString());
        assertThat(page.body()).as("the application, as before the restart").isEqualTo("app:/page");
        await().during(Duration.ofMillis(500)).atMost(Duration.ofSeconds(5))
                .until(() -> probesSince(restartedAt) == 0);
        assertThat(backend.upgrades).as("upgrades that reached the backend")
                .allMatch(upgrade -> upgrade.pathQuery().equals("/health"));
    }

    /** Health probes that reached the backend at or after {@code nanos} ({@link System#nanoTime()}). */
    private long probesSince(long nanos) {
        return backend.upgrades.stream().filter(u -> u.pathQuery().equals("/health"))
                .filter(u -> u.arrivedNanos() - nanos >= 0).count();
    }

    /**
     * Behind the application's own {@code ServerConnector} nothing watches a client waiting for its backend: one that
     * left is found out when its {@code 101} is written. A reset fails that write, and is reported 499 like a client
     * gone on the proxy's own connector; a plain close cannot be told from a client that still reads, so the 101 goes
     * out and the session ends at once, with the client's 1006. Either way the backend's session, which it saw open
     * and closed with 1001, is reported exactly once.
     */
    @ParameterizedTest(name = "client {0}")
    @ValueSource(strings = {"resets", "closes"})
    void reportsAClientThatLeftDuringTheBackendHandshakeBehindAPlainConnector(String how) throws Exception {
        RecordingListener listener = new RecordingListener();
        SessionEvents sessions = new SessionEvents();
        try (RawBackend held = RawBackend.holding(RawBackend.switching(null))) {
            server.stop();
            mount(ProxyBuilder.create().listener(listener).listener(sessions).route("/ws/", held.backend()),
                    ServerConnector::new);
            RawHttp client = RawHttp.over(new Socket("127.0.0.1", connector.getLocalPort()));
            client.send(RawHttp.Request.upgrade("/ws/chat", "127.0.0.1:" + connector.getLocalPort()));
            held.nextRequest();
            if (how.equals("resets")) {
                client.reset();
            } else {
                client.close();
            }

            held.release();
            assertThat(held.nextEnd(10)).as("the backend's session, closed by the proxy").isEqualTo("close:1001");
            if (how.equals("resets")) {
                assertThat(listener.first(RecordingListener.Rejected.class))
                        .isEqualTo(new RecordingListener.Rejected("/ws/", "/ws/chat", 499,
                                "client connection lost before its 101 was written"));
                // The relay is gone once the backend's close is answered: every event it would report is in.
                Clients.assertNoLeaks(proxy, null);
                assertThat(listener.events).as("the only event").hasSize(1);
            } else {
                SessionClose close = sessions.nextClose();
                assertThat(close.initiator()).isEqualTo(SessionClose.Initiator.CLIENT);
                assertThat(close.clientCode()).isEqualTo(1006);
                Clients.assertNoLeaks(proxy, null);
                String id = listener.first(RecordingListener.Opened.class).sessionId();
                assertThat(listener.events).as("one session, opened and closed")
                        .containsExactly(new RecordingListener.Opened(id), new RecordingListener.Closed(id));
            }
        }
    }

    @Test
    void worksWithTheJdkWebSocketClient() throws Exception {
        java.util.concurrent.BlockingQueue<String> received = new java.util.concurrent.LinkedBlockingQueue<>();
        java.net.http.WebSocket socket = HttpClient.newHttpClient().newWebSocketBuilder()
                .subprotocols("chat.v2", "other")
                .buildAsync(uri("ws", "/ws/jdk"), new java.net.http.WebSocket.Listener() {
                    @Override
                    public java.util.concurrent.CompletionStage<?> onText(java.net.http.WebSocket webSocket,
                            CharSequence data, boolean last) {
                        received.add(data.toString());
                        webSocket.request(1);
                        return null;
                    }

                    @Override
                    public java.util.concurrent.CompletionStage<?> onClose(java.net.http.WebSocket webSocket,
                            int statusCode, String reason) {
                        received.add("closed:" + statusCode + ":" + reason);
                        return null;
                    }
                }).get(10, java.util.concurrent.TimeUnit.SECONDS);
        assertThat(socket.getSubprotocol()).isEqualTo("chat.v2");
        socket.sendText("jdk hello", true);
        assertThat(received.poll(10, java.util.concurrent.TimeUnit.SECONDS)).isEqualTo("jdk hello");
        socket.sendClose(4000, "jdk-bye");
        assertThat(received.poll(10, java.util.concurrent.TimeUnit.SECONDS)).isEqualTo("closed:4100:backend-reply");
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(4000, "jdk-bye"));
    }
}
