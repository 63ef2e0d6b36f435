package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.thread.Invocable;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Stopping the proxy: draining, the deadline, refusing new upgrades, and the lifecycle rules. */
class ShutdownTest {

    private TestBackend backend;
    private WebSocketProxy proxy;
    private Clients clients;
    private final RecordingListener listener = new RecordingListener();

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", backend.backend()).listener(listener).build();
        proxy.start();
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, clients, backend);
    }

    @Test
    void returnsByTheDeadlineWhenAClientDoesNotReadItsCloseFrame() throws Exception {
        try (RawWebSocket stalled = stalledClient()) {
            WsRecorder healthy = clients.connect(Clients.ws(proxy, "/healthy"));

            long start = System.nanoTime();
            proxy.stop(Duration.ofMillis(500));
            Duration took = Duration.ofNanos(System.nanoTime() - start);

            assertThat(took).as("stop() returns by its deadline, plus a margin for a loaded machine")
                    .isLessThan(Duration.ofMillis(500 + 2_000));
            assertThat(healthy.nextClose()).isEqualTo(new WsRecorder.Closed(1001, "proxy shutting down"));
            // The stalled client's close frame could not be written: its connection was dropped.
            assertThatThrownBy(() -> {
                while (true) {
                    stalled.read();
                }
            }).isInstanceOf(IOException.class);
        }
    }

    @Test
    void answersNewUpgradesAndPlainHttpWith503WhileStopWaitsForItsSessions() throws Exception {
        try (RawWebSocket stalled = stalledClient()) {
            WsRecorder healthy = clients.connect(Clients.ws(proxy, "/healthy"));
            int backendConnections = backend.httpConnections.get();

            CompletableFuture<Void> stopping = CompletableFuture.runAsync(() -> proxy.stop(Duration.ofSeconds(60)));
            // The healthy session's close shows the drain has begun; the stalled client, which cannot be sent its
            // close frame, keeps stop() waiting, and the standalone server still accepts connections meanwhile.
            assertThat(healthy.nextClose()).isEqualTo(new WsRecorder.Closed(1001, "proxy shutting down"));
            try (RawHttp client = RawHttp.connect(proxy)) {
                RawHttp.Response upgrade = client.exchange(RawHttp.Request.upgrade("/late", RawHttp.host(proxy)));
                assertThat(upgrade.status()).as("%s", upgrade).isEqualTo(503);
            }
            try (RawHttp client = RawHttp.connect(proxy)) {
                RawHttp.Response plain = client.exchange(RawHttp.Request.plain("GET", "/late", RawHttp.host(proxy)));
                assertThat(plain.status()).as("%s", plain).isEqualTo(503);
            }
            assertThat(listener.all(RecordingListener.Rejected.class)).as("both refusals reported")
                    .containsExactly(new RecordingListener.Rejected("/", "/late", 503, "proxy is shutting down"),
                            new RecordingListener.Rejected("/", "/late", 503, "proxy is shutting down"));
            assertThat(stopping).as("stop() still waits for the stalled session").isNotDone();
            assertThat(backend.httpConnections).as("the late requests never reached the backend")
                    .hasValue(backendConnections);
            stalled.close();
            stopping.get(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void aProxyThatReusesItsPortHandsEveryNewConnectionToItsSuccessorWhileItDrains() throws Exception {
        // A restart that refuses no client: the successor binds the same port, then the first proxy stops. While it
        // drained, it went on accepting about half of the new connections (the kernel spreads them over both
        // sockets) and answered their upgrades 503.
        try (WebSocketProxy first = ProxyBuilder.create().listen("127.0.0.1", 0).reusePort(true)
                .route("/", backend.backend()).build()) {
            int port = first.start().getPort();
            // Connected before the successor listens, so the first proxy's: one that reads nothing holds its drain.
            try (RawWebSocket stalled = stalledClient(Clients.ws(first, "/stalled"));
                    RawHttp keptAlive = RawHttp.connect(first);
                    WebSocketProxy successor = ProxyBuilder.create().listen("127.0.0.1", port).reusePort(true)
                            .route("/", backend.backend()).build()) {
                WsRecorder healthy = clients.connect(Clients.ws(first, "/healthy"));
                assertThat(keptAlive.exchange(RawHttp.Request.plain("GET", "/plain", RawHttp.host(first))).status())
                        .isEqualTo(200);
                successor.start();
                CompletableFuture<Void> stopping = CompletableFuture.runAsync(() -> first.stop(Duration.ofSeconds(60)));
                assertThat(healthy.nextClose()).as("the first proxy drains")
                        .isEqualTo(new WsRecorder.Closed(1001, "proxy shutting down"));

                // A connection kept alive for a next request is closed, so that its client sends it to the successor; it
                // was kept open, and its next request got the first proxy's 503.
                assertThat(keptAlive.closedWithin(Duration.ofSeconds(5))).as("the kept-alive connection").isTrue();
                for (int i = 0; i < 20; i++) {
                    try (RawHttpExchange exchange = RawHttpExchange.upgrade(port, "/late")) {
                        assertThat(exchange.statusLine()).as("new connection %d", i).startsWith("HTTP/1.1 101");
                    }
                }
                assertThat(stopping).as("the first proxy still waits for its stalled session").isNotDone();
                stalled.close();
                stopping.get(10, TimeUnit.SECONDS);
            }
        }
    }

    /**
     * A client that reads nothing while the backend pushes to it, until the proxy can write no more: a close frame to
     * it cannot be written either.
     */
    private RawWebSocket stalledClient() throws Exception {
        return stalledClient(Clients.ws(proxy, "/stalled"));
    }

    /** Like {@link #stalledClient()} to {@code uri}, whose path is {@code /stalled}. */
    private RawWebSocket stalledClient(URI uri) throws Exception {
        RawWebSocket stalled = RawWebSocket.connect(uri, 16 * 1024);
        try {
            stalled.send(true, RawWebSocket.TEXT, "push:4096:65536".getBytes(StandardCharsets.UTF_8));
            backend.awaitPushStalled();
            return stalled;
        } catch (Exception | Error e) {
            stalled.close();
            throw e;
        }
    }

    @Test
    void reportsEveryCloseToEveryListenerBeforeStopReturns() throws Exception {
        // stop() waited for the sessions to be deregistered, which each was before its listeners were told: a close
        // that completed on another thread than stop()'s (here the stalled client's, once it reads again, held a
        // moment by a slow listener) was still on its way when stop() returned. Mounted, as the stop of a standalone
        // server then waits for its selector threads, and so for the listeners running there.
        CountDownLatch stopReturned = new CountDownLatch(1);
        RecordingListener recorder = new RecordingListener();
        WebSocketProxy mounted = ProxyBuilder.create().route("/", backend.backend())
                .listener(slowStalledClose(stopReturned, Duration.ofMillis(500))).listener(recorder).build();
        Server server = mount(mounted);
        try (RawWebSocket stalled = stalledClient(uri(server, "/stalled"))) {
            List<WsRecorder> healthy = new ArrayList<>();
            for (int i = 0; i < 19; i++) {
                healthy.add(clients.connect(uri(server, "/healthy-" + i)));
            }
            await().atMost(Duration.ofSeconds(10))
                    .until(() -> recorder.all(RecordingListener.Opened.class).size() == 20);
            List<String> opened = recorder.all(RecordingListener.Opened.class).stream()
                    .map(RecordingListener.Opened::sessionId).toList();
            CompletableFuture<RawWebSocket.Frame> unstalled = readCloseOnceTheDrainBegan(healthy, stalled);

            mounted.stop(Duration.ofSeconds(10));
            List<RecordingListener.Closed> closed = recorder.all(RecordingListener.Closed.class);
            stopReturned.countDown();

            assertThat(closed).as("closes reported when stop() returned, each once")
                    .extracting(RecordingListener.Closed::sessionId).containsExactlyInAnyOrderElementsOf(opened);
            assertThat(unstalled.get(10, TimeUnit.SECONDS).closeCode()).isEqualTo(1001);
        } finally {
            stopReturned.countDown();
            server.stop();
        }
    }

    @Test
    void waitsForABlockedListenerUntilTheDrainDeadlineOnly() throws Exception {
        // Mounted, so that the stop is the proxy's alone: a standalone server's stop then closes its connections on
        // each selector thread, one of which the listener holds.
        CountDownLatch release = new CountDownLatch(1);
        RecordingListener recorder = new RecordingListener();
        WebSocketProxy mounted = ProxyBuilder.create().route("/", backend.backend())
                .listener(slowStalledClose(release, Duration.ofSeconds(30))).listener(recorder).build();
        Server server = mount(mounted);
        try (RawWebSocket stalled = stalledClient(uri(server, "/stalled"))) {
            List<WsRecorder> healthy = List.of(clients.connect(uri(server, "/healthy")));
            CompletableFuture<RawWebSocket.Frame> unstalled = readCloseOnceTheDrainBegan(healthy, stalled);
            Duration drain = Duration.ofMillis(500);

            long start = System.nanoTime();
            mounted.stop(drain);
            Duration took = Duration.ofNanos(System.nanoTime() - start);
            release.countDown();

            assertThat(took).as("stop() waits for the blocked listener until its deadline (whole milliseconds)")
                    .isGreaterThanOrEqualTo(drain.minusMillis(1));
            assertThat(took).as("and returns then, plus the 100 ms it gives dropped sessions and a margin")
                    .isLessThan(drain.plusMillis(100 + 2_000));
            assertThat(unstalled.get(10, TimeUnit.SECONDS).closeCode()).isEqualTo(1001);
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(
                    recorder.all(RecordingListener.Closed.class)).as("both closes, once released").hasSize(2));
        } finally {
            release.countDown();
            server.stop();
        }
    }

    /** Mounts {@code mounted} in a started server of the test's, on the connector the proxy recommends. */
    private static Server mount(WebSocketProxy mounted) throws Exception {
        Server server = new Server(WebSocketProxy.threadPool());
        ServerConnector connector = WebSocketProxy.serverConnector(server);
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        server.setHandler(mounted.handler());
        server.start();
        return server;
    }

    private static URI uri(Server server, String path) {
        return URI.create("ws://127.0.0.1:" + ((ServerConnector) server.getConnectors()[0]).getLocalPort() + path);
    }

    /**
     * A listener whose {@code onSessionClosed} for the session of {@code /stalled} waits until {@code release} is
     * counted down, or {@code atMost} has passed.
     */
    private static ProxyListener slowStalledClose(CountDownLatch release, Duration atMost) {
        return new ProxyListener() {
            @Override
            public void onSessionClosed(ProxySession session, SessionClose close) {
                if (session.backendUri().getPath().equals("/stalled")) {
                    try {
                        release.await(atMost.toMillis(), TimeUnit.MILLISECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            }
        };
    }

    /**
     * Once the healthy clients got their {@code 1001} (the drain has begun), reads the stalled client until its close
     * frame, on another thread: its close then completes on the proxy's selector thread, not on the one stopping.
     */
    private static CompletableFuture<RawWebSocket.Frame> readCloseOnceTheDrainBegan(List<WsRecorder> healthy,
            RawWebSocket stalled) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                for (WsRecorder client : healthy) {
                    assertThat(client.nextClose().code()).isEqualTo(1001);
                }
                return stalled.readClose();
            } catch (Exception e) {
                throw new java.util.concurrent.CompletionException(e);
            }
        });
    }

    @Test
    void refusesAStopFromAListenerAndKeepsRunning() throws Exception {
        // A listener that closed the proxy hung it for good: the stop waited for that listener's own call to return,
        // then for Jetty's stop of the selector thread the listener ran on.
        CompletableFuture<RuntimeException> refused = new CompletableFuture<>();
        AtomicReference<WebSocketProxy> self = new AtomicReference<>();
        WebSocketProxy stopping = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", backend.backend())
                .listener(new ProxyListener() {
                    @Override
                    public void onSessionClosed(ProxySession session, SessionClose close) {
                        try {
                            self.get().close();
                            refused.complete(null);
                        } catch (RuntimeException e) {
                            refused.complete(e);
                        }
                    }
                })
                .build();
        self.set(stopping);
        try {
            stopping.start();
            WsRecorder client = clients.connect(Clients.ws(stopping, "/stops-the-proxy"));
            client.session.close();
            client.nextClose();

            assertThat(refused.get(10, TimeUnit.SECONDS)).isInstanceOf(IllegalStateException.class)
                    .hasMessage("stop(): called from a ProxyListener, which the stop waits for (expected: a call from "
                            + "another thread, such as an executor of yours)");
            WsRecorder next = clients.connect(Clients.ws(stopping, "/still-running"));
            next.sendText("hello");
            assertThat(next.nextText()).isEqualTo("hello");
            next.session.close();
            next.nextClose();
            Clients.assertNoLeaks(stopping, clients, backend);
        } finally {
            stopping.close();
        }
    }

    /**
     * A next handler of the standalone proxy that stops it, as an admin endpoint would: one that Jetty runs on a
     * selector thread (non-blocking) hung there for ever, as the server's stop waited for that thread; a blocking one
     * stopped the server under its own request, whose answer was lost. Both are refused, answer, and the proxy runs.
     */
    @ParameterizedTest
    @ValueSource(strings = {"NON_BLOCKING", "BLOCKING"})
    void refusesAStopFromItsNextHandlerWhichAnswersAndTheProxyKeepsRunning(String invocationType) throws Exception {
        CompletableFuture<RuntimeException> refused = new CompletableFuture<>();
        AtomicReference<WebSocketProxy> self = new AtomicReference<>();
        WebSocketProxy stopping = ProxyBuilder.create().listen("127.0.0.1", 0).route("/ws/", backend.backend())
                .nextHandler(new Handler.Abstract(Invocable.InvocationType.valueOf(invocationType)) {
                    @Override
                    public boolean handle(Request request, Response response, Callback callback) {
                        try {
                            self.get().close();
                            refused.complete(null);
                        } catch (RuntimeException e) {
                            refused.complete(e);
                        }
                        response.write(true, null, callback);
                        return true;
                    }
                })
                .build();
        self.set(stopping);
        try {
            stopping.start();
            try (RawHttpExchange stop = RawHttpExchange.send(stopping.uri().getPort(),
                    "GET /admin/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")) {
                assertThat(stop.statusLine()).as("the next handler's answer").isEqualTo("HTTP/1.1 200 OK");
            }
            assertThat(refused.get(10, TimeUnit.SECONDS)).isInstanceOf(IllegalStateException.class)
                    .hasMessage("stop(): called from a thread of the proxy's own server (its next handler, or a "
                            + "callback of it), which the server's stop waits for (expected: a call from another "
                            + "thread, such as an executor of yours)");
            assertStillRelays(stopping, Clients.ws(stopping, "/ws/still-running"));
        } finally {
            stopping.close();
        }
    }

    /**
     * The user hooks a handshake runs, each set to stop the proxy from its first call and to let that refusal out, as
     * a hook that does not catch it would: the hook fails, and its handshake gets the hook's failure, 500.
     */
    @ParameterizedTest
    @ValueSource(strings = {"an OriginValidator", "an Authenticator", "a BackendSelector",
            "a BackendSelector on failover"})
    void refusesAStopFromAHandshakeHookAndAnswersItsHandshake500(String hook) throws Exception {
        // Standalone, each hung for good: a request, and a backend's answer on failover, is handled on a selector
        // thread, which Jetty's stop of the server waits for.
        AtomicReference<WebSocketProxy> self = new AtomicReference<>();
        CompletableFuture<RuntimeException> refused = new CompletableFuture<>();
        Runnable stop = stopOnce(self, refused);
        Backend unreachable = Backend.of("ws://127.0.0.1:" + Clients.closedPort());
        AtomicInteger selections = new AtomicInteger();
        ProxyBuilder builder = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", backend.backend());
        switch (hook) {
            case "an OriginValidator" -> builder.originValidator((origin, request) -> {
                stop.run();
                return true;
            });
            case "an Authenticator" -> builder.authenticator(Authenticator.of(request -> {
                stop.run();
                return AuthDecision.allow();
            }));
            case "a BackendSelector" -> builder.backendSelector(context -> {
                stop.run();
                return backend.backend();
            });
            default -> builder.backendSelector(context -> {
                if (selections.getAndIncrement() == 0) {
                    return unreachable; // its connect fails: the next select runs on the selector that saw it
                }
                stop.run();
                return backend.backend();
            });
        }
        WebSocketProxy stopping = builder.build();
        try {
            stopping.start();
            self.set(stopping);
            CompletableFuture<Integer> status = CompletableFuture.supplyAsync(() -> {
                try (RawHttp client = RawHttp.connect(stopping)) {
                    return client.exchange(RawHttp.Request.upgrade("/stops-the-proxy", RawHttp.host(stopping)))
                            .status();
                } catch (IOException e) {
                    throw new java.util.concurrent.CompletionException(e);
                }
            });

            assertThat(refused.get(10, TimeUnit.SECONDS)).isInstanceOf(IllegalStateException.class)
                    .hasMessage("stop(): called from " + hook.replace(" on failover", "") + ", which the stop waits "
                            + "for (expected: a call from another thread, such as an executor of yours)");
            assertThat(status.get(10, TimeUnit.SECONDS)).as("the hook's failure").isEqualTo(500);
            assertStillRelays(stopping, Clients.ws(stopping, "/still-running"));
            Clients.assertNoLeaks(stopping, clients, backend);
        } finally {
            stopping.close();
        }
    }

    /** The user hooks of a session's open and close, and its timeout policy: the hook fails, the session goes on. */
    @ParameterizedTest
    @ValueSource(strings = {"onSessionOpened", "onSessionClosed", "a TimeoutPolicy"})
    void refusesAStopFromASessionHookAndKeepsTheSession(String hook) throws Exception {
        // Standalone, each hung for good, as above; the selector's callbacks run on the selector thread that relays
        // the session, and the drain waits for the very session whose open or close runs them.
        AtomicReference<WebSocketProxy> self = new AtomicReference<>();
        CompletableFuture<RuntimeException> refused = new CompletableFuture<>();
        WebSocketProxy stopping = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", r -> sessionHook(r.backends(backend.backend()), hook, stopOnce(self, refused))).build();
        try {
            stopping.start();
            self.set(stopping);
            assertStillRelays(stopping, Clients.ws(stopping, "/stops-the-proxy"));

            assertThat(refused.get(10, TimeUnit.SECONDS)).isInstanceOf(IllegalStateException.class)
                    .hasMessage("stop(): called from " + (hook.startsWith("on") ? "a BackendSelector" : hook)
                            + ", which the stop waits for (expected: a call from another thread, such as an executor "
                            + "of yours)");
            assertStillRelays(stopping, Clients.ws(stopping, "/still-running"));
            Clients.assertNoLeaks(stopping, clients, backend);
        } finally {
            stopping.close();
        }
    }

    @Test
    void refusesAStopFromASelectorsSessionCallbackOfAMountedProxy() throws Exception {
        // Mounted, the stop did not stop the server, but its drain waited for the very session whose close ran the
        // selector's callback: the whole drain, the session and every later close held by it.
        AtomicReference<WebSocketProxy> self = new AtomicReference<>();
        CompletableFuture<RuntimeException> refused = new CompletableFuture<>();
        WebSocketProxy mounted = ProxyBuilder.create().drainTimeout(Duration.ofSeconds(30))
                .route("/", r -> sessionHook(r.backends(backend.backend()), "onSessionClosed",
                        stopOnce(self, refused)))
                .build();
        Server server = mount(mounted);
        self.set(mounted);
        try {
            assertStillRelays(mounted, uri(server, "/stops-the-proxy"));

            assertThat(refused.get(10, TimeUnit.SECONDS)).isInstanceOf(IllegalStateException.class)
                    .hasMessageStartingWith("stop(): called from a BackendSelector, which the stop waits for");
            assertStillRelays(mounted, uri(server, "/still-running"));
            Clients.assertNoLeaks(mounted, clients, backend);
        } finally {
            mounted.close();
            server.stop();
        }
    }

    /**
     * A hook's body that stops the proxy on its first call once {@code self} is set (the proxy started: a policy is
     * read when the proxy is built and started too), records what the stop threw ({@code null}: nothing), and lets it
     * out, as a hook that does not catch it would.
     */
    private static Runnable stopOnce(AtomicReference<WebSocketProxy> self,
            CompletableFuture<RuntimeException> refused) {
        AtomicBoolean called = new AtomicBoolean();
        return () -> {
            if (self.get() == null || !called.compareAndSet(false, true)) {
                return;
            }
            try {
                self.get().close();
                refused.complete(null);
            } catch (RuntimeException e) {
                refused.complete(e);
                throw e;
            }
        };
    }

    /** Sets on {@code route} a selector or a timeout policy whose {@code hook} runs {@code stop}. */
    private RouteBuilder sessionHook(RouteBuilder route, String hook, Runnable stop) {
        return switch (hook) {
            case "onSessionOpened", "onSessionClosed" -> route.backendSelector(new BackendSelector() {
                @Override
                public Backend select(SelectionContext context) {
                    return backend.backend();
                }

                @Override
                public void onSessionOpened(Backend chosen) {
                    if (hook.equals("onSessionOpened")) {
                        stop.run();
                    }
                }

                @Override
                public void onSessionClosed(Backend chosen) {
                    if (hook.equals("onSessionClosed")) {
                        stop.run();
                    }
                }
            });
            default -> route.timeoutPolicy(new TimeoutPolicy() {
                @Override
                public Duration connectTimeout() {
                    stop.run();
                    return TimeoutPolicy.DEFAULT_CONNECT_TIMEOUT;
                }

                @Override
                public Duration idleTimeout() {
                    return TimeoutPolicy.DEFAULT_IDLE_TIMEOUT;
                }
            });
        };
    }

    /** A session through {@code proxy} at {@code uri} relays a message and closes. */
    private void assertStillRelays(WebSocketProxy proxy, URI uri) throws Exception {
        WsRecorder client = clients.connect(uri);
        client.sendText("hello");
        assertThat(client.nextText()).isEqualTo("hello");
        client.session.close();
        client.nextClose();
    }

    @Test
    void stopsAnotherProxyFromAListener() throws Exception {
        // Only a stop of the hook's own proxy waits for the hook's call: one proxy's listener that stopped another
        // (this class's proxy) was refused all the same, and the other proxy went on running.
        CompletableFuture<RuntimeException> stopped = new CompletableFuture<>();
        WebSocketProxy other = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", backend.backend())
                .listener(new ProxyListener() {
                    @Override
                    public void onSessionClosed(ProxySession session, SessionClose close) {
                        try {
                            proxy.close();
                            stopped.complete(null);
                        } catch (RuntimeException e) {
                            stopped.complete(e);
                        }
                    }
                })
                .build();
        URI stoppedUri = proxy.uri();
        try {
            other.start();
            WsRecorder client = clients.connect(Clients.ws(other, "/stops-the-other-proxy"));
            client.session.close();
            client.nextClose();

            assertThat(stopped.get(10, TimeUnit.SECONDS)).as("the stop from the other proxy's listener").isNull();
            assertThatThrownBy(() -> new java.net.Socket(stoppedUri.getHost(), stoppedUri.getPort()).close())
                    .as("the stopped proxy's port").isInstanceOf(IOException.class);
            WsRecorder next = clients.connect(Clients.ws(other, "/still-running"));
            next.sendText("hello");
            assertThat(next.nextText()).isEqualTo("hello");
            next.session.close();
            next.nextClose();
        } finally {
            other.close();
        }
    }

    @Test
    void refusesANegativeDrainAndKeepsRunning() throws Exception {
        // It was taken as no drain at all: every session dropped at once, where drain() and drainTimeout() refuse it.
        assertThatThrownBy(() -> proxy.stop(Duration.ofSeconds(-1))).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("drain: PT-1S (expected: >= 0)");
        WsRecorder client = clients.connect(Clients.ws(proxy, "/still-running"));
        client.sendText("hello");
        assertThat(client.nextText()).isEqualTo("hello");
        client.session.close();
        client.nextClose();
    }

    @Test
    void forgetsAClosedSessionLongBeforeTheConnectTimeout() throws Exception {
        java.util.concurrent.BlockingQueue<ProxySession> opened = new java.util.concurrent.LinkedBlockingQueue<>();
        WebSocketProxy slow = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", backend.backend())
                .timeoutPolicy(TimeoutPolicy.custom().connect(Duration.ofSeconds(60)).build())
                .listener(new ProxyListener() {
                    @Override
                    public void onSessionOpened(ProxySession session) {
                        opened.add(session);
                    }
                })
                .build();
        try {
            slow.start();
            List<java.lang.ref.WeakReference<ProxySession>> sessions = new ArrayList<>();
            for (int i = 0; i < 20; i++) {
                WsRecorder client = clients.connect(Clients.ws(slow, "/retained"));
                sessions.add(new java.lang.ref.WeakReference<>(
                        opened.poll(10, java.util.concurrent.TimeUnit.SECONDS)));
                client.session.close();
                client.nextClose();
            }
            Clients.assertNoLeaks(slow, clients, backend);
            // Nothing (a pending timer, a pool) may keep finished sessions reachable until the connect timeout. A
            // pool thread may still point at the last task it ran, so a few may linger: never most of them.
            org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> {
                System.gc();
                return sessions.stream().filter(session -> session.get() != null).count() <= 3;
            });
        } finally {
            slow.close();
        }
    }

    @Test
    void refusesToStartTwiceOrAfterStop() throws Exception {
        assertThatThrownBy(proxy::start).isInstanceOf(IllegalStateException.class);
        proxy.close();
        assertThatThrownBy(proxy::start).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void reportsTheBoundUri() {
        assertThat(proxy.uri().getHost()).isEqualTo("127.0.0.1");
        assertThat(proxy.uri().getPort()).isPositive();
    }

    @Test
    void refusesToStartWhenThePortIsTaken() throws Exception {
        WebSocketProxy second = proxy.toBuilder().listen("127.0.0.1", proxy.uri().getPort()).build();
        assertThatThrownBy(second::start).isInstanceOf(IOException.class);
        second.close();
    }
}
