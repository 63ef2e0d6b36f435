package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.eclipse.jetty.io.ManagedSelector;
import org.eclipse.jetty.alpn.server.ALPNServerConnectionFactory;
import org.eclipse.jetty.http2.server.HTTP2ServerConnectionFactory;
import org.eclipse.jetty.server.ConnectionFactory;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.SslConnectionFactory;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import dev.wsproxy.internal.HandshakeGuard;

/**
 * Slowloris (matrix H11): connections that drip a request head are closed at the handshake deadline, however steadily
 * they drip; pending connections are capped by closing the oldest; real clients, upgraded sessions and handshakes
 * waiting for their backend are never touched; and all of it holds when the proxy is mounted in a user's server.
 */
class SlowlorisTest {

    private final List<AutoCloseable> resources = new ArrayList<>();
    private final ScheduledExecutorService pacer = Executors.newSingleThreadScheduledExecutor();
    private TestBackend backend;
    private WebSocketProxy proxy;
    private Clients clients;
    private Server userServer;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        pacer.shutdownNow();
        try {
            for (AutoCloseable resource : resources) {
                resource.close();
            }
            if (proxy != null && proxy.handler().isStarted()) {
                HandshakeGuard guard = guard(proxy.handler().getServer());
                await().atMost(Duration.ofSeconds(10)).untilAsserted(() ->
                        assertThat(guard.watched()).as("connections the guard still follows").isZero());
            }
        } finally {
            if (userServer != null) {
                try {
                    Clients.assertNoLeaks(proxy, clients, backend);
                } finally {
                    clients.close();
                    userServer.stop();
                    backend.close();
                }
            } else {
                Clients.tearDown(proxy, clients, backend);
            }
        }
    }

    private void startProxy(ProxyBuilder builder) throws Exception {
        proxy = builder.listen("127.0.0.1", 0).route("/ws/", backend.backend()).build();
        proxy.start();
    }

    private static HandshakeGuard guard(Server server) {
        for (Connector connector : server.getConnectors()) {
            HandshakeGuard guard = connector.getBean(HandshakeGuard.class);
            if (guard != null) {
                return guard;
            }
        }
        throw new AssertionError("no handshake guard on the connectors of " + server);
    }

    private StalledSockets stalledSockets(int port) throws IOException {
        StalledSockets sockets = new StalledSockets(port);
        resources.add(sockets);
        return sockets;
    }

    /** Sends the echo round trip that proves a client is served end to end. */
    private void echoThroughTheProxy(java.net.URI uri, String text) throws Exception {
        WsRecorder client = clients.connect(uri);
        client.sendText(text);
        assertThat(client.nextText()).isEqualTo(text);
        client.session.close();
        assertThat(client.nextClose().code()).isEqualTo(1000);
    }

    @Test
    void closesAThousandStalledHandshakesAtTheDeadlineWhileARealClientIsServed() throws Exception {
        Duration deadline = Duration.ofSeconds(3);
        // A connector that accepts from its selector, with room for the whole flood in its accept queue: the test can
        // queue 1,000 connections in the kernel first and have them accepted in one burst, so that all of them are
        // pending together however slowly this (shared, 2-core) machine opens sockets.
        ServerConnector connector = startUserServer(ProxyBuilder.create().handshakeTimeout(deadline), 0, 1100);
        int port = connector.getLocalPort();
        echoThroughTheProxy(java.net.URI.create("ws://127.0.0.1:" + port + "/ws/warm-up"), "warm-up");
        HandshakeGuard guard = guard(userServer);
        QueuedThreadPool threads = (QueuedThreadPool) userServer.getThreadPool();

        pauseAccepting(connector);
        StalledSockets stalled = stalledSockets(port);
        stalled.open(1000);
        stalled.drip(Duration.ofMillis(200), 100);
        long resumed = System.nanoTime();
        connector.setAccepting(true);
        await().atMost(Duration.ofSeconds(10)).until(() -> guard.pending() == 1000);
        // Reading the queued bytes of the burst takes threads for a moment; none may stay with a pending head.
        await().atMost(Duration.ofSeconds(2)).until(() -> threads.getBusyThreads() < 20);
        assertThat(guard.pending()).as("pending once the threads are back").isEqualTo(1000);

        echoThroughTheProxy(java.net.URI.create("ws://127.0.0.1:" + port + "/ws/real"), "served beside 1,000 stalled");
        assertThat(stalled.pollClosed()).as("stalled sockets closed before the real client was served").isZero();

        assertThat(stalled.awaitAllClosed(deadline.plusSeconds(10))).as("stalled sockets closed").isEqualTo(1000);
        for (StalledSockets.Stalled socket : stalled.snapshot()) {
            assertThat(socket.unexpected).as("bytes before the close").isNull();
            assertThat(Duration.ofNanos(socket.closedNanos - resumed)).as("accepted, then closed after")
                    .isGreaterThanOrEqualTo(deadline).isLessThan(deadline.plusSeconds(8));
        }
        assertThat(stalled.drips()).as("drip rounds while they lived").isGreaterThan(5);
        assertThat(guard.pending()).isZero();
        echoThroughTheProxy(java.net.URI.create("ws://127.0.0.1:" + port + "/ws/after"), "served after the flood");
    }

    /**
     * Mounts the proxy in a user's server, in front of {@link AppHandler}, on a connector with {@code acceptors}
     * acceptor threads (0: the selector accepts), one selector, this accept queue (0: the JVM's default) and these
     * connection factories (none: plain HTTP/1.1).
     */
    private ServerConnector startUserServer(ProxyBuilder builder, int acceptors, int acceptQueue,
            ConnectionFactory... factories) throws Exception {
        proxy = builder.route("/ws/", r -> r.backends(backend.backend()).plainHttp(PlainHttp.NEXT_HANDLER)).build();
        userServer = new Server();
        ServerConnector connector = factories.length == 0 ? new ServerConnector(userServer, acceptors, 1)
                : new ServerConnector(userServer, acceptors, 1, factories);
        connector.setHost("127.0.0.1");
        connector.setIdleTimeout(30_000);
        connector.setAcceptQueueSize(acceptQueue);
        userServer.addConnector(connector);
        Handler.Wrapper proxyHandler = proxy.handler();
        proxyHandler.setHandler(new AppHandler());
        userServer.setHandler(proxyHandler);
        userServer.start();
        return connector;
    }

    /**
     * Stops a selector-accepting connector from accepting, and returns once its selector has dropped the accept
     * registration: the selector runs submitted updates in order, so a later one running proves the earlier ran.
     */
    private static void pauseAccepting(ServerConnector connector) throws InterruptedException {
        connector.setAccepting(false);
        for (ManagedSelector selector : connector.getSelectorManager().getBeans(ManagedSelector.class)) {
            CountDownLatch done = new CountDownLatch(1);
            selector.submit(ignored -> done.countDown());
            assertThat(done.await(10, TimeUnit.SECONDS)).as("selector ran the update").isTrue();
        }
    }

    @Test
    void closesAClientDrippingEvery100MsAtTheDeadlineNotAtAnIdleTimeout() throws Exception {
        Duration deadline = Duration.ofSeconds(1);
        startProxy(ProxyBuilder.create().handshakeTimeout(deadline));
        long opened = System.nanoTime(); // before the connect: the proxy's timer starts at its accept
        try (Socket socket = new Socket("127.0.0.1", proxy.uri().getPort())) {
            socket.setSoTimeout(10_000);
            OutputStream out = socket.getOutputStream();
            out.write(StalledSockets.PARTIAL_HEAD.getBytes(StandardCharsets.ISO_8859_1));
            AtomicInteger dripped = new AtomicInteger();
            pacer.scheduleAtFixedRate(() -> {
                if (dripped.get() < 100) {
                    try {
                        out.write('a');
                        dripped.incrementAndGet();
                    } catch (IOException closed) {
                        throw new IllegalStateException(closed); // ends the schedule
                    }
                }
            }, 100, 100, TimeUnit.MILLISECONDS);

            assertThat(readUntilClosed(socket.getInputStream())).as("bytes before the close").isEmpty();
            Duration lifetime = Duration.ofNanos(System.nanoTime() - opened);
            assertThat(lifetime).isGreaterThanOrEqualTo(deadline).isLessThan(deadline.plusSeconds(5));
            assertThat(dripped.get()).as("bytes dripped, each well inside any idle timeout").isGreaterThanOrEqualTo(5);
        }
    }

    @Test
    void writesA408AccessLineForAHeadNotFinishedByTheDeadline() throws Exception {
        // An operator under a slowloris attack saw nothing in the access log: nginx logs 408 for such a connection.
        Duration deadline = Duration.ofMillis(500);
        startProxy(ProxyBuilder.create().handshakeTimeout(deadline));
        try (StandardError.Capture log = StandardError.capture();
                Socket socket = new Socket("127.0.0.1", proxy.uri().getPort())) {
            socket.setSoTimeout(10_000);
            socket.getOutputStream().write(StalledSockets.PARTIAL_HEAD.getBytes(StandardCharsets.ISO_8859_1));
            assertThat(readUntilClosed(socket.getInputStream())).as("bytes before the close").isEmpty();

            await().atMost(Duration.ofSeconds(5)).until(() -> !accessLines(log).isEmpty());
            assertThat(accessLines(log)).singleElement().satisfies(line -> {
                assertThat(line).matches("sid=- client=127\\.0\\.0\\.1 route=- backend=- duration_ms=\\d+ method=- "
                        + "status=408 reason=header_timeout");
                assertThat(durationMillis(line)).isGreaterThanOrEqualTo(deadline.toMillis());
            });
        }
    }

    @Test
    void writesA400AccessLineForAHeadItsClientEnded() throws Exception {
        // A client that gave up in the middle of its head left nothing, where nginx logs 400.
        startProxy(ProxyBuilder.create().handshakeTimeout(Duration.ofSeconds(30)));
        try (StandardError.Capture log = StandardError.capture()) {
            // Its request line complete, then a half-close; then a request line cut short, then a close.
            try (Socket socket = new Socket("127.0.0.1", proxy.uri().getPort())) {
                socket.setSoTimeout(10_000);
                socket.getOutputStream().write(StalledSockets.PARTIAL_HEAD.getBytes(StandardCharsets.ISO_8859_1));
                socket.shutdownOutput();
                readUntilClosed(socket.getInputStream());
            }
            try (Socket socket = new Socket("127.0.0.1", proxy.uri().getPort())) {
                socket.getOutputStream().write("GET /ws/sta".getBytes(StandardCharsets.ISO_8859_1));
            }

            String none = "sid=- client=127\\.0\\.0\\.1 route=- backend=- duration_ms=\\d+ ";
            await().atMost(Duration.ofSeconds(5)).until(() -> accessLines(log).size() >= 2);
            assertThat(accessLines(log)).satisfiesExactlyInAnyOrder(
                    line -> assertThat(line).matches(none + "method=GET status=400 reason=incomplete_head"),
                    line -> assertThat(line).matches(none + "method=- status=400 reason=incomplete_head"));
        }
    }

    @Test
    void writesNoAccessLineForAConnectionThatSentNoByteOfAHead() throws Exception {
        // A browser's speculative preconnect, a keep-alive connection idle after its request: nothing to log, as nginx.
        Duration deadline = Duration.ofMillis(500);
        startProxy(ProxyBuilder.create().handshakeTimeout(deadline));
        HandshakeGuard guard = guard(proxy.handler().getServer());
        try (StandardError.Capture log = StandardError.capture()) {
            try (Socket closedAtOnce = new Socket("127.0.0.1", proxy.uri().getPort())) {
                await().atMost(Duration.ofSeconds(5)).until(() -> guard.watched() == 1);
            }
            await().atMost(Duration.ofSeconds(5)).until(() -> guard.watched() == 0);
            try (Socket silent = new Socket("127.0.0.1", proxy.uri().getPort());
                    Socket keptAlive = new Socket("127.0.0.1", proxy.uri().getPort())) {
                silent.setSoTimeout(10_000);
                keptAlive.setSoTimeout(10_000);
                keptAlive.getOutputStream().write("GET /none HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                        .getBytes(StandardCharsets.ISO_8859_1));
                assertThat(readResponse(keptAlive.getInputStream())).startsWith("HTTP/1.1 404 ")
                        .doesNotContainIgnoringCase("Connection: close");
                assertThat(readUntilClosed(silent.getInputStream())).as("closed at the deadline").isEmpty();
                assertThat(readUntilClosed(keptAlive.getInputStream())).as("closed at the deadline").isEmpty();
            }
            await().atMost(Duration.ofSeconds(5)).until(() -> guard.watched() == 0);
            assertThat(accessLines(log)).as("access lines: the 404's only").singleElement()
                    .satisfies(line -> assertThat(line).endsWith(" method=GET status=404 reason=no_route"));
        }
    }

    @Test
    void closesTheOldestPendingConnectionBeyondTheCapSoThatARealClientGetsThrough() throws Exception {
        startProxy(ProxyBuilder.create().handshakeTimeout(Duration.ofSeconds(30)).maxPendingHandshakes(4));
        HandshakeGuard guard = guard(proxy.handler().getServer());
        StalledSockets stalled = stalledSockets(proxy.uri().getPort());
        List<StalledSockets.Stalled> first = new ArrayList<>();
        for (int i = 1; i <= 4; i++) {
            first.add(stalled.open());
            int expected = i;
            await().atMost(Duration.ofSeconds(5)).until(() -> guard.pending() == expected); // the proxy's order is ours
        }

        StalledSockets.Stalled fifth = stalled.open();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!first.get(0).closed() && System.nanoTime() < deadline) {
            stalled.awaitAllClosed(Duration.ofMillis(100));
        }
        assertThat(first.get(0).closed()).as("the oldest pending connection is closed at once").isTrue();
        assertThat(stalled.pollClosed()).as("closed in all").isEqualTo(1);
        assertThat(fifth.closed()).isFalse();
        assertThat(guard.pending()).isEqualTo(4);

        // A real client while the cap is full of stalled sockets: it evicts the oldest and is served.
        echoThroughTheProxy(Clients.ws(proxy, "/ws/real"), "through a full cap");
        await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> assertThat(stalled.pollClosed()).isEqualTo(2));
        assertThat(first.get(1).closed()).as("the next oldest made room").isTrue();

        // The pending ones go away: the count follows, and new connections wait again without evicting anyone.
        stalled.close();
        await().atMost(Duration.ofSeconds(5)).until(() -> guard.pending() == 0 && guard.watched() == 0);
        StalledSockets again = stalledSockets(proxy.uri().getPort());
        for (int i = 1; i <= 4; i++) {
            again.open();
            int expected = i;
            await().atMost(Duration.ofSeconds(5)).until(() -> guard.pending() == expected);
        }
        assertThat(again.pollClosed()).isZero();
    }

    @Test
    void neverClosesAnUpgradedSessionWhileTheDeadlineClosesAStalledOne() throws Exception {
        Duration deadline = Duration.ofSeconds(1);
        startProxy(ProxyBuilder.create().handshakeTimeout(deadline));
        StalledSockets stalled = stalledSockets(proxy.uri().getPort());
        WsRecorder session = clients.connect(Clients.ws(proxy, "/ws/long-lived"));
        stalled.open();

        assertThat(stalled.awaitAllClosed(deadline.plusSeconds(5))).as("the stalled socket beside it").isEqualTo(1);
        assertThat(session.events.poll(deadline.multipliedBy(3).toMillis(), TimeUnit.MILLISECONDS))
                .as("an event on the session during three deadlines").isNull();
        session.sendText("still here");
        assertThat(session.nextText()).isEqualTo("still here");
        session.session.close();
        assertThat(session.nextClose().code()).isEqualTo(1000);
    }

    @Test
    void letsTheConnectTimeoutGovernAHandshakeWaitingForItsBackend() throws Exception {
        RawBackend silent = RawBackend.answering(RawBackend.silent());
        resources.add(silent);
        Duration deadline = Duration.ofSeconds(1);
        Duration connectTimeout = Duration.ofSeconds(3);
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).handshakeTimeout(deadline)
                .timeoutPolicy(TimeoutPolicy.custom().connect(connectTimeout).build())
                .failover(1, Duration.ofSeconds(30))
                .route("/ws/", silent.backend()).build();
        proxy.start();
        StalledSockets stalled = stalledSockets(proxy.uri().getPort());
        try (RawHttp client = RawHttp.connect(proxy)) {
            long started = System.nanoTime();
            client.send(RawHttp.Request.upgrade("/ws/chat", RawHttp.host(proxy)));
            stalled.open();
            assertThat(stalled.awaitAllClosed(deadline.plusSeconds(5))).as("a stalled socket opened with it")
                    .isEqualTo(1);

            RawHttp.Response response = client.readResponse();
            assertThat(response.status()).as("answer to the handshake waiting for its backend").isEqualTo(504);
            assertThat(Duration.ofNanos(System.nanoTime() - started)).isGreaterThanOrEqualTo(connectTimeout);
        }
    }

    @Test
    void givesAKeepAliveConnectionAFreshDeadlineAfterEachExchange() throws Exception {
        Duration deadline = Duration.ofSeconds(1);
        startProxy(ProxyBuilder.create().handshakeTimeout(deadline).nextHandler(new AppHandler()));
        try (Socket socket = new Socket("127.0.0.1", proxy.uri().getPort())) {
            socket.setSoTimeout(10_000);
            long opened = System.nanoTime();
            OutputStream out = socket.getOutputStream();
            InputStream in = socket.getInputStream();
            // Ten requests 250 ms apart: the connection outlives its first deadline twice over.
            int requests = 10;
            AtomicLong lastSent = new AtomicLong();
            pacer.scheduleAtFixedRate(new Runnable() {
                private int sent;

                @Override
                public void run() {
                    if (sent < requests) {
                        sent++;
                        try {
                            lastSent.set(System.nanoTime());
                            out.write(("GET /app/" + sent + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                                    .getBytes(StandardCharsets.ISO_8859_1));
                        } catch (IOException closed) {
                            throw new IllegalStateException(closed);
                        }
                    }
                }
            }, 0, 250, TimeUnit.MILLISECONDS);
            for (int i = 1; i <= requests; i++) {
                assertThat(readResponse(in)).as("response %d", i).startsWith("HTTP/1.1 200").endsWith("app:/app/" + i);
            }
            long lastResponse = System.nanoTime();
            assertThat(Duration.ofNanos(lastResponse - opened)).isGreaterThan(deadline.multipliedBy(2));

            assertThat(readUntilClosed(in)).as("bytes before the close").isEmpty();
            long closed = System.nanoTime();
            // The last exchange ended after its request was sent and before its response was read.
            assertThat(Duration.ofNanos(closed - lastSent.get())).as("closed after the last request was sent")
                    .isGreaterThanOrEqualTo(deadline);
            assertThat(Duration.ofNanos(closed - lastResponse)).as("closed after the last response was read")
                    .isLessThan(deadline.plusSeconds(5));
        }
    }

    @Test
    void guardsTheConnectorsOfAUserServerWhenMounted() throws Exception {
        Duration deadline = Duration.ofSeconds(1);
        ServerConnector connector = startUserServer(
                ProxyBuilder.create().handshakeTimeout(deadline).maxPendingHandshakes(100), 1, 0);
        Handler.Wrapper proxyHandler = proxy.handler();
        int port = connector.getLocalPort();
        StandardError.Capture log = StandardError.capture();
        resources.add(log);

        StalledSockets stalled = stalledSockets(port);
        stalled.open(20);
        stalled.drip(Duration.ofMillis(100), 100);
        echoThroughTheProxy(java.net.URI.create("ws://127.0.0.1:" + port + "/ws/mounted"), "mounted");
        try (Socket socket = new Socket("127.0.0.1", port)) {
            socket.setSoTimeout(10_000);
            socket.getOutputStream().write("GET /page HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                    .getBytes(StandardCharsets.ISO_8859_1));
            assertThat(readResponse(socket.getInputStream())).as("the application's page").endsWith("app:/page");
        }
        assertThat(stalled.awaitAllClosed(deadline.plusSeconds(8))).as("stalled sockets closed").isEqualTo(20);
        for (StalledSockets.Stalled socket : stalled.snapshot()) {
            assertThat(socket.lifetime()).isGreaterThanOrEqualTo(deadline).isLessThan(deadline.plusSeconds(8));
        }
        // Mounted, the user's server logs requests its own way: no line for a connection the proxy did not route.
        assertThat(accessLines(log)).as("access lines of the mounted proxy, but its session's")
                .filteredOn(line -> line.contains(" route=- ")).isEmpty();

        HandshakeGuard guard = guard(userServer);
        HttpConfiguration configuration = connector.getConnectionFactory(HttpConnectionFactory.class)
                .getHttpConfiguration();
        assertThat(configuration.getCustomizers()).contains(guard);
        Clients.assertNoLeaks(proxy, clients, backend);
        proxyHandler.stop();
        assertThat(connector.getBean(HandshakeGuard.class)).as("guard left on the user's connector").isNull();
        assertThat(configuration.getCustomizers()).as("customizers left on the user's configuration")
                .doesNotContain(guard);
    }

    @Test
    void closesAtTheDeadlineATlsHandshakeStalledOnAMountedConnectorWithAlpn() throws Exception {
        // With ALPN, Jetty opens no HTTP/1 connection until the TLS handshake has chosen the protocol: the guard, which
        // followed HTTP/1 connections only, did not see the connection negotiating it, and a client that stalled in
        // the middle of its ClientHello was held until the connector's idle timeout (30 s here).
        Duration deadline = Duration.ofSeconds(1);
        HttpConfiguration http = new HttpConfiguration();
        ALPNServerConnectionFactory alpn = new ALPNServerConnectionFactory("h2", "http/1.1");
        alpn.setDefaultProtocol("http/1.1");
        ServerConnector connector = startUserServer(ProxyBuilder.create().handshakeTimeout(deadline), 1, 0,
                new SslConnectionFactory(TestCertificates.LOCALHOST.server(), alpn.getProtocol()), alpn,
                new HTTP2ServerConnectionFactory(http), new HttpConnectionFactory(http));
        int port = connector.getLocalPort();

        long opened = System.nanoTime();
        try (Socket socket = new Socket("127.0.0.1", port)) {
            socket.setSoTimeout(10_000);
            // A handshake record of 512 bytes, of which the client sends the first 16: the record header, the
            // ClientHello's header, its version and the start of its random.
            socket.getOutputStream().write(new byte[] {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, (byte) 0xFC,
                0x03, 0x03, 0x11, 0x22, 0x33, 0x44, 0x55});
            String answer = readUntilClosed(socket.getInputStream());
            assertThat(Duration.ofNanos(System.nanoTime() - opened)).isGreaterThanOrEqualTo(deadline)
                    .isLessThan(deadline.plusSeconds(5));
            assertThat(answer).as("bytes before the close: a TLS alert record at most").matches("(?s)(\u0015.*)?");
        }

        java.net.URI uri = java.net.URI.create("https://127.0.0.1:" + port + "/");
        try (javax.net.ssl.SSLSocket socket = TestCertificates.LOCALHOST.socketTo(uri)) {
            javax.net.ssl.SSLParameters parameters = socket.getSSLParameters();
            parameters.setApplicationProtocols(new String[] {"http/1.1"});
            socket.setSSLParameters(parameters);
            socket.getOutputStream().write("GET /page HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                    .getBytes(StandardCharsets.ISO_8859_1));
            assertThat(readResponse(socket.getInputStream())).as("the application's page, over http/1.1 chosen by ALPN")
                    .endsWith("app:/page");
            assertThat(socket.getApplicationProtocol()).isEqualTo("http/1.1");
        }
        HandshakeGuard guard = guard(userServer);
        try (javax.net.ssl.SSLSocket socket = TestCertificates.LOCALHOST.socketTo(uri)) {
            javax.net.ssl.SSLParameters parameters = socket.getSSLParameters();
            parameters.setApplicationProtocols(new String[] {"h2"});
            socket.setSSLParameters(parameters);
            socket.startHandshake();
            assertThat(socket.getApplicationProtocol()).isEqualTo("h2");
            await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> assertThat(guard.watched())
                    .as("connections followed once h2 was chosen (HTTP/2 is not)").isZero());
        }
    }

    @Test
    void closesAtTheDeadlineAConnectionWhoseClientKeepsItOpenAfterARefusal() throws Exception {
        // Every refusal says Connection: close; Jetty then half-closes and, when the response was written before the
        // handler returned, waits for the client's end. A client that never closes held its connection until the
        // connector's idle timeout (35 s), neither pending nor capped: a flood of refused handshakes held sockets
        // without bound.
        startProxy(ProxyBuilder.create().handshakeTimeout(Duration.ofMillis(500))
                .originValidator(OriginValidator.allowList("https://app.example")));
        ServerConnector connector = (ServerConnector) proxy.handler().getServer().getConnectors()[0];
        List<Socket> refused = new ArrayList<>();
        try {
            for (int i = 0; i < 20; i++) {
                Socket socket = new Socket("127.0.0.1", proxy.uri().getPort());
                refused.add(socket);
                socket.setSoTimeout(10_000);
                socket.getOutputStream().write(("GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        + "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://evil.example\r\n\r\n")
                        .getBytes(StandardCharsets.US_ASCII));
                assertThat(readUntilClosed(socket.getInputStream())).startsWith("HTTP/1.1 403 ");
            }
            await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> assertThat(connector.getConnectedEndPoints())
                    .as("the refused connections, their clients silent and their sockets open").isEmpty());
        } finally {
            for (Socket socket : refused) {
                socket.close();
            }
        }
    }

    @Test
    void validatesTheSettingsAtOnceAndCanBeTurnedOff() throws Exception {
        ProxyBuilder builder = ProxyBuilder.create();
        assertThatThrownBy(() -> builder.handshakeTimeout(Duration.ofSeconds(-1)))
                .hasMessage("handshakeTimeout: PT-1S (expected: positive, or 0 for none)");
        assertThatThrownBy(() -> builder.maxPendingHandshakes(0))
                .hasMessage("maxPendingHandshakes: 0 (expected: >= 1)");
        assertThatThrownBy(() -> builder.handshakeTimeout(null)).isInstanceOf(NullPointerException.class);

        startProxy(ProxyBuilder.create().handshakeTimeout(Duration.ZERO).maxPendingHandshakes(Integer.MAX_VALUE));
        for (Connector connector : proxy.handler().getServer().getConnectors()) {
            assertThat(connector.getBean(HandshakeGuard.class)).as("guard with both limits off").isNull();
        }
        proxy.close();
        proxy = null;
        // Under a millisecond counts as one, as every duration of the API does (it was refused).
        startProxy(ProxyBuilder.create().handshakeTimeout(Duration.ofNanos(10)));
        assertThat(guard(proxy.handler().getServer()).toString()).startsWith("HandshakeGuard[timeout=1ms,");
        proxy.close();
        proxy = null;
        startProxy(ProxyBuilder.create());
        assertThat(guard(proxy.handler().getServer())).as("guard with the defaults")
                .hasToString("HandshakeGuard[timeout=" + ProxyBuilder.DEFAULT_HANDSHAKE_TIMEOUT.toMillis()
                        + "ms, pending=0/" + ProxyBuilder.DEFAULT_MAX_PENDING_HANDSHAKES
                        + ", watched=0, expired=0, evicted=0]");
    }

    /** The messages of the access lines written to the captured standard error so far. */
    private static List<String> accessLines(StandardError.Capture log) {
        String marker = " dev.wsproxy.access - ";
        return log.text().lines().filter(line -> line.contains(marker))
                .map(line -> line.substring(line.indexOf(marker) + marker.length())).toList();
    }

    private static long durationMillis(String line) {
        java.util.regex.Matcher duration = java.util.regex.Pattern.compile(" duration_ms=(\\d+) ").matcher(line);
        assertThat(duration.find()).as("duration_ms in %s", line).isTrue();
        return Long.parseLong(duration.group(1));
    }

    /** Reads to the end of the stream; a reset counts as the end. Fails on the socket timeout. */
    private static String readUntilClosed(InputStream in) throws IOException {
        StringBuilder bytes = new StringBuilder();
        try {
            int b;
            while ((b = in.read()) != -1) {
                bytes.append((char) b);
            }
        } catch (SocketTimeoutException e) {
            throw new AssertionError("still open after the socket timeout; read: " + bytes, e);
        } catch (SocketException reset) {
            // Reset by the peer: closed as well.
        }
        return bytes.toString();
    }

    /** Reads one response with a {@code Content-Length} body; returns the head and the body as text. */
    private static String readResponse(InputStream in) throws IOException {
        StringBuilder head = new StringBuilder();
        while (!head.toString().endsWith("\r\n\r\n")) {
            int b = in.read();
            if (b == -1) {
                throw new AssertionError("closed in the middle of a response: " + head);
            }
            head.append((char) b);
        }
        int length = 0;
        for (String line : head.toString().split("\r\n")) {
            if (line.toLowerCase(java.util.Locale.ROOT).startsWith("content-length:")) {
                length = Integer.parseInt(line.substring("content-length:".length()).trim());
            }
        }
        return head + new String(in.readNBytes(length), StandardCharsets.UTF_8);
    }

    /** The user's application: answers {@code app:PATH}. */
    private static final class AppHandler extends Handler.Abstract {
        @Override
        public boolean handle(Request request, Response response, Callback callback) {
            response.write(true, ByteBuffer.wrap(("app:" + Request.getPathInContext(request))
                    .getBytes(StandardCharsets.UTF_8)), callback);
            return true;
        }
    }
}
