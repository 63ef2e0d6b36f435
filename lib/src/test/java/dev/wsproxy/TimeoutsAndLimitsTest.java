package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;

import org.eclipse.jetty.websocket.api.Callback;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Idle timeout, maximum lifetime, close timeout and the message size limit, each on a proxy of its own. */
class TimeoutsAndLimitsTest {

    private TestBackend backend;
    private WebSocketProxy proxy;
    private Clients clients;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, clients, backend);
    }

    private WsRecorder connect(UnaryOperator<ProxyBuilder> settings) throws Exception {
        proxy = settings.apply(ProxyBuilder.create().listen("127.0.0.1", 0).route("/ws/", backend.backend())).build();
        proxy.start();
        return clients.connect(Clients.ws(proxy, "/ws/limits"));
    }

    @Test
    void closesBothLegsWith1001WhenIdle() throws Exception {
        // Matrix C4: 1001 on both legs at the idle timeout, timed from the last traffic. The echo below is the last
        // traffic on either leg, so it happened after `sent` and before `echoed`. No close may come sooner than the
        // timeout after `sent`, less 5 ms (Jetty counts idleness in whole milliseconds). The upper bound is a second
        // after the timeout from `echoed`: far looser than the matrix's 10 %, which the scheduling and GC pauses of a
        // shared two-core machine can exceed, but with a 1.5 s timeout it still catches a close that waits for a
        // second period of idleness (3 s) or for anything but the timeout.
        Duration idle = Duration.ofMillis(1_500);
        Duration early = Duration.ofMillis(5);
        Duration late = Duration.ofSeconds(1);
        WsRecorder client = connect(b -> b.timeoutPolicy(TimeoutPolicy.idle(idle)));
        CompletableFuture<BackendClose> backendClose = awaitBackendClose();

        long sent = System.nanoTime();
        client.sendText("hello");
        assertThat(client.nextText()).isEqualTo("hello");
        long echoed = System.nanoTime();
        WsRecorder.Closed close = client.nextClose();
        long clientClosedAt = System.nanoTime();
        BackendClose atBackend = backendClose.get(10, TimeUnit.SECONDS);

        assertThat(close).isEqualTo(new WsRecorder.Closed(1001, "idle timeout"));
        assertThat(atBackend.closed()).isEqualTo(new TestBackend.Closed(1001, "idle timeout"));
        assertThat(Duration.ofNanos(clientClosedAt - sent)).as("the client's close after the last traffic")
                .isGreaterThanOrEqualTo(idle.minus(early));
        assertThat(Duration.ofNanos(clientClosedAt - echoed)).as("the client's close after the last traffic")
                .isLessThanOrEqualTo(idle.plus(late));
        assertThat(Duration.ofNanos(atBackend.arrivedNanos() - sent)).as("the backend's close after the last traffic")
                .isGreaterThanOrEqualTo(idle.minus(early));
        assertThat(Duration.ofNanos(atBackend.arrivedNanos() - echoed))
                .as("the backend's close after the last traffic").isLessThanOrEqualTo(idle.plus(late));
    }

    /** A close the backend received, and when ({@link System#nanoTime()}). */
    private record BackendClose(TestBackend.Closed closed, long arrivedNanos) {
    }

    /**
     * Waits on a thread of its own for the backend's next close, so that its arrival is timed while the test waits for
     * the client's.
     */
    private CompletableFuture<BackendClose> awaitBackendClose() {
        CompletableFuture<BackendClose> arrival = new CompletableFuture<>();
        Thread waiter = new Thread(() -> {
            try {
                TestBackend.Closed closed = backend.nextClose();
                arrival.complete(new BackendClose(closed, System.nanoTime()));
            } catch (Throwable e) {
                arrival.completeExceptionally(e);
            }
        }, "backend-close-waiter");
        waiter.setDaemon(true);
        waiter.start();
        return arrival;
    }

    @Test
    void keepsSessionsWhoseTrafficIsNewerThanTheIdleTimeout() throws Exception {
        WsRecorder client = connect(b -> b.timeoutPolicy(TimeoutPolicy.idle(Duration.ofMillis(800))));
        long start = System.nanoTime();
        // Keep talking for more than twice the idle timeout: the session must survive.
        int round = 0;
        while (System.nanoTime() - start < Duration.ofMillis(2000).toNanos()) {
            client.sendText("r" + round);
            assertThat(client.nextText()).isEqualTo("r" + round);
            round++;
            // Pace the traffic by a round trip through a ping, never by sleeping.
            client.session.sendPing(ByteBuffer.allocate(0), Callback.NOOP);
            client.next(WsRecorder.Pong.class);
        }
        assertThat(client.session.isOpen()).isTrue();
        client.session.close();
        assertThat(client.nextClose().code()).isEqualTo(1000);
    }

    @Test
    void takesASubMillisecondIdleTimeoutAsOneMillisecondNotAsNone() throws Exception {
        // Jetty takes idle timeouts in milliseconds, and 0 as none: 500 µs made sessions that never idled out.
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/ws/", backend.backend())
                .timeoutPolicy(TimeoutPolicy.idle(Duration.ofNanos(500_000))).build();
        proxy.start();
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/ws/idle"))) {
            RawWebSocket.assertCloseFrame(client.read(), 1001, "idle timeout");
        }
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(1001, "idle timeout"));
    }

    @Test
    void logsAFailingPolicyForItsSessionsAlsoWhenItFailedAtStart() throws Exception {
        // Read at build and at start as a session reads it, the policy's failure there took its once-per-class WARN:
        // a policy that failed before its live configuration was loaded had every later session failure unlogged.
        class NotLoaded implements TimeoutPolicy {
            @Override
            public Duration connectTimeout() {
                throw new IllegalStateException("configuration not loaded");
            }

            @Override
            public Duration idleTimeout() {
                return Duration.ofMinutes(1);
            }
        }
        String atStart = StandardError.of(() -> {
            proxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/ws/", backend.backend())
                    .timeoutPolicy(new NotLoaded()).build();
            proxy.start();
        });
        String atSession = StandardError.of(() -> {
            WsRecorder client = clients.connect(Clients.ws(proxy, "/ws/s"));
            client.sendText("hello");
            assertThat(client.nextText()).as("a session on the defaults").isEqualTo("hello");
            client.session.close();
            assertThat(client.nextClose().code()).isEqualTo(1000);
        });

        assertThat(atSession).as("the session's log").contains("WARN",
                "TimeoutPolicy " + NotLoaded.class.getName() + " failed; using the defaults");
        assertThat(atStart).as("the start's log").contains("WARN",
                "TimeoutPolicy " + NotLoaded.class.getName() + " failed when the proxy started")
                .doesNotContain("failed; using the defaults");
    }

    @Test
    void closesSessionsAtTheirMaximumLifetime() throws Exception {
        WsRecorder client = connect(b -> b.timeoutPolicy(
                TimeoutPolicy.custom().maxLifetime(Duration.ofMillis(400)).build()));
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1001, "session lifetime exceeded"));
        assertThat(backend.nextClose().code()).isEqualTo(1001);
    }

    @Test
    void spreadsTheLifetimesOfSessionsOpenedTogether() throws Exception {
        // Sixteen sessions opened one after the other within milliseconds (as clients reconnecting after a restart)
        // are closed at lifetimes of their own, the policy's shortened by a draw of up to 15 % (3.4 to 4 s here), so
        // they do not all reconnect at once again: their closes spread over about 600 ms.
        long lifetimeMillis = 4_000;
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/ws/", backend.backend())
                .timeoutPolicy(TimeoutPolicy.custom().maxLifetime(Duration.ofMillis(lifetimeMillis)).build())
                .build();
        proxy.start();

        List<FirstFrames.Timed> firsts = FirstFrames.of(proxy, "/ws/lifetime", 16);

        assertThat(firsts).allSatisfy(first ->
                RawWebSocket.assertCloseFrame(first.frame(), 1001, "session lifetime exceeded"));
        FirstFrames.assertSpreadBelow(firsts, lifetimeMillis);
    }

    @Test
    void closesClientWith1009AndBackendWith1001WhenTheClientSendsTooMuch() throws Exception {
        WsRecorder client = connect(b -> b.maxMessageSize(1000));
        client.session.sendBinary(ByteBuffer.allocate(1000), Callback.NOOP);
        assertThat(client.nextBinary()).hasSize(1000);
        client.session.sendBinary(ByteBuffer.allocate(1001), Callback.NOOP);
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1009, "message too big"));
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(1001, "client: message too big"));
    }

    @Test
    void countsTheWholeMessageNotTheFrameAgainstTheLimit() throws Exception {
        WsRecorder client = connect(b -> b.maxMessageSize(1000));
        client.session.sendPartialBinary(ByteBuffer.allocate(600), false, Callback.NOOP);
        client.session.sendPartialBinary(ByteBuffer.allocate(600), true, Callback.NOOP);
        assertThat(client.nextClose().code()).isEqualTo(1009);
        assertThat(backend.nextClose().code()).isEqualTo(1001);
    }

    @Test
    void closesBackendWith1009AndClientWith1001WhenTheBackendSendsTooMuch() throws Exception {
        WsRecorder client = connect(b -> b.maxMessageSize(1000));
        client.sendText("push:1:2000");
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1001, "backend: message too big"));
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(1009, "message too big"));
    }

    @Test
    void dropsAPeerThatDoesNotAnswerACloseWithinTheCloseTimeout() throws Exception {
        java.util.concurrent.BlockingQueue<ProxySession> opened = new java.util.concurrent.LinkedBlockingQueue<>();
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/ws/", backend.backend())
                .timeoutPolicy(TimeoutPolicy.custom().close(Duration.ofMillis(300)).build())
                .listener(new ProxyListener() {
                    @Override
                    public void onSessionOpened(ProxySession session) {
                        opened.add(session);
                    }
                })
                .build();
        proxy.start();
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/ws/silent"))) {
            opened.poll(10, java.util.concurrent.TimeUnit.SECONDS).close(4002, "kicked");
            assertThat(raw.readClose().closeCode()).isEqualTo(4002);
            assertThat(backend.nextClose().code()).isEqualTo(4002);
            // The raw client never answers the close: the proxy drops its connection at the close timeout (an end of
            // stream or a reset, long before the raw client's own 10 s read timeout), and the session is gone while
            // the client still holds its socket.
            org.assertj.core.api.Assertions.assertThatThrownBy(raw::read).isInstanceOf(java.io.IOException.class)
                    .isNotInstanceOf(java.net.SocketTimeoutException.class);
            org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(5))
                    .untilAsserted(() -> assertThat(proxy.sessions()).isEmpty());
        }
    }

    @Test
    void appliesRouteSettingsOverProxyWideOnes() throws Exception {
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0)
                .maxMessageSize(10)
                .route("/ws/", backend.backend())
                .route("/big/", r -> r.backends(backend.backend()).maxMessageSize(10_000))
                .build();
        proxy.start();
        WsRecorder big = clients.connect(Clients.ws(proxy, "/big/x"));
        big.sendText("a message longer than ten bytes");
        assertThat(big.nextText()).isEqualTo("a message longer than ten bytes");
        WsRecorder small = clients.connect(Clients.ws(proxy, "/ws/x"));
        small.sendText("a message longer than ten bytes");
        assertThat(small.nextClose().code()).isEqualTo(1009);
        big.session.close();
        big.nextClose();
    }
}
