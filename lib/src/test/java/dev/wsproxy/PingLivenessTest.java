package dev.wsproxy;

import static dev.wsproxy.RawWebSocket.assertCloseFrame;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The proxy's keep-alive pings ({@link TimeoutPolicy.Builder#ping}), with an interval of {@value #PING_MILLIS} ms:
 * matrix row C7 (a half-open backend after its {@code 101}: ping liveness, {@code 1014} to the client, the backend
 * socket closed) and what the pings must not break.
 *
 * <p>A dead peer is one that sends nothing, not even a pong, for an interval after a ping, or reads nothing: a backend
 * frozen while the client sends (it reads nothing, so the proxy's writes and its ping stall), a backend that reads but
 * never answers, a client that stops reading and answering, two peers that both stop reading. A client held back by
 * the frozen backend answers no ping either, but the relay is not reading from it, so it is not judged: only the
 * backend is (without that rule the client is often judged first, and the test fails on its missing close frame). A
 * live peer is pinged each interval and its session stays open; the pongs answering the proxy's pings are not relayed,
 * while the peers' own pings and pongs still are, even a pong with the proxy's payload that answers no ping. The pings
 * do not keep an idle session alive: the idle timeout counts only what the relay carries.
 *
 * <p>The clients are raw sockets, so that the test sees every ping the proxy sends and decides whether to answer.
 * The waits for a verdict are bounded by the socket's read timeout (10 s), far above the two intervals it takes.
 */
class PingLivenessTest {

    static final long PING_MILLIS = 200;
    private static final byte[] PROXY_PING = "wsproxy".getBytes(StandardCharsets.US_ASCII);

    private final SessionEvents events = new SessionEvents();
    private final List<AutoCloseable> resources = new ArrayList<>();
    private final Thaw thaw = new Thaw();
    private WebSocketProxy proxy;

    @AfterEach
    void stop() throws Exception {
        thaw.release();
        Clients.stopAfterLeakCheck(proxy, resources,
                resources.stream().filter(TestBackend.class::isInstance).toArray(TestBackend[]::new));
    }

    /** A Jetty backend, which answers pings by itself, behind the proxy. */
    private TestBackend startProxyToLiveBackend(Duration idle) throws Exception {
        TestBackend backend = new TestBackend("live");
        resources.add(backend);
        startProxy(backend.backend(), idle);
        return backend;
    }

    private void startProxy(Backend backend, Duration idle) throws Exception {
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", backend)
                .timeoutPolicy(TimeoutPolicy.custom().ping(Duration.ofMillis(PING_MILLIS)).idle(idle)
                        .close(Duration.ofMillis(500)).build())
                .listener(events)
                .build();
        proxy.start();
    }

    @Test
    void dropsABackendFrozenWhileTheClientSendsAndClosesTheClientWith1014() throws Exception {
        RawBackend backend = RawBackend.upgradingThen((socket, out) -> {
            // Frozen after its 101: reads nothing, writes nothing, keeps the socket open until the test ends. Then it
            // reads up to its end of stream ("eof") or a reset.
            thaw.await();
        });
        resources.add(backend);
        startProxy(backend.backend(), Duration.ofHours(1));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/frozen"))) {
            long connected = System.nanoTime();
            // The client writes until its writes block (the proxy's send to the frozen backend has stalled, and it
            // reads no more from the client) and never answers a ping: the proxy is not reading from it, so its
            // silence says nothing, and only the backend is judged.
            byte[] frame = RawFrames.encode(RawFrames.BINARY, new byte[64 * 1024], true);
            Writes writes = Writes.start("client-writes", 1024, i -> client.sendRaw(frame));

            RawWebSocket.Frame close = skipProxyPings(client, false);
            assertFoundWithinSeconds(connected, 5);
            assertCloseFrame(close, 1014, "backend not responding");
            SessionClose ended = events.nextClose();
            assertThat(ended.initiator()).isEqualTo(SessionClose.Initiator.PROXY);
            assertThat(ended.backendCode()).as("no close frame from the backend").isEqualTo(1006);
            assertThatThrownBy(client::read).isInstanceOf(IOException.class);
            writes.awaitEnd("the client's blocked writes", Duration.ofSeconds(10));
        }
        thaw.release();
        assertThat(backend.nextEnd(10)).as("the backend socket, closed by the proxy").isIn("eof", "reset");
    }

    @Test
    void dropsABackendThatReadsButNeverAnswersAPing() throws Exception {
        RawBackend backend = RawBackend.recording();
        resources.add(backend);
        startProxy(backend.backend(), Duration.ofHours(1));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/mute"))) {
            long connected = System.nanoTime();
            RawWebSocket.Frame close = skipProxyPings(client, true);
            assertFoundWithinSeconds(connected, 5);
            assertCloseFrame(close, 1014, "backend not responding");
            assertThat(events.nextClose().backendCode()).isEqualTo(1006);
        }
        assertThat(backend.nextEnd(10)).as("no close frame for a dead backend: its socket is dropped")
                .isIn("eof", "reset");
        assertThat(backend.frames).as("what the backend was sent: pings, and no close frame").isNotEmpty()
                .allSatisfy(frame -> {
                    assertThat(frame.opcode()).isEqualTo(RawFrames.PING);
                    assertThat(frame.payload()).isEqualTo(PROXY_PING);
                });
    }

    @Test
    void dropsASessionWhosePeersBothStopReading() throws Exception {
        // Each peer writes until its writes block and reads nothing: the relay reads from neither (each leg's frame
        // waits for the other leg's stalled send), so silence proves nothing, but a ping that cannot be written for
        // an interval does: the peer reads nothing.
        byte[] fromBackend = RawFrames.encode(RawFrames.BINARY, new byte[64 * 1024], false);
        CompletableFuture<Writes> backendWrites = new CompletableFuture<>();
        RawBackend backend = RawBackend.upgradingThen((socket, out) -> {
            backendWrites.complete(Writes.start("backend-writes", 1024, i -> RawFrames.write(out, fromBackend)));
            thaw.await();
        });
        resources.add(backend);
        startProxy(backend.backend(), Duration.ofHours(1));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/deadlock"), 16 * 1024)) {
            byte[] fromClient = RawFrames.encode(RawFrames.BINARY, new byte[64 * 1024], true);
            Writes clientWrites = Writes.start("client-writes", 1024, i -> client.sendRaw(fromClient));

            SessionClose ended = events.nextClose();
            assertThat(ended.initiator()).isEqualTo(SessionClose.Initiator.PROXY);
            assertThat(ended.clientCode()).as("no close frame from the client").isEqualTo(1006);
            assertThat(ended.backendCode()).as("no close frame from the backend").isEqualTo(1006);
            // Both connections are gone: the blocked writes end (failed, or done into a socket that drains them).
            clientWrites.awaitEnd("the client's blocked writes", Duration.ofSeconds(10));
            backendWrites.get(10, TimeUnit.SECONDS).awaitEnd("the backend's blocked writes", Duration.ofSeconds(10));
        }
    }

    @Test
    void relaysAPongWithTheProxysPayloadThatAnswersNoPing() throws Exception {
        TestBackend backend = startProxyToLiveBackend(Duration.ofHours(1));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/unsolicited"))) {
            // Sent at once, before any interval has passed: no ping of the proxy's is waiting for it.
            client.send(true, RawWebSocket.PONG, PROXY_PING);
            assertThat(backend.pongs.poll(10, TimeUnit.SECONDS)).as("the client's pong, relayed").isEqualTo("wsproxy");
            client.sendClose(1000, "");
            assertThat(skipProxyPings(client, true).closeCode()).isEqualTo(1000);
        }
    }

    @Test
    void dropsEachAnswerToTheProxysPingsWhenTwoArriveTogether() throws Exception {
        // The backend answers the first ping with one byte of its pong, which the proxy reads and waits on; an
        // interval later it is pinged again, and then sends the rest of the first pong and the second one together.
        // With a flag for "a ping waits for its pong", the first answer cleared it and the second went to the client.
        byte[] pong = RawFrames.encode(RawFrames.PONG, PROXY_PING, false);
        RawBackend backend = RawBackend.upgradingThen((socket, out) -> {
            InputStream in = socket.getInputStream();
            readProxyPing(in);
            out.write(pong, 0, 1);
            out.flush();
            readProxyPing(in);
            RawFrames.write(out, RawFrames.concat(Arrays.copyOfRange(pong, 1, pong.length), pong,
                    RawFrames.text("after the pongs", false)));
        });
        resources.add(backend);
        startProxy(backend.backend(), Duration.ofHours(1));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/two-pongs"))) {
            RawWebSocket.Frame next = skipProxyPings(client, true);
            assertThat(next.opcode()).as("the next frame after the proxy's pings: no pong").isEqualTo(RawWebSocket.TEXT);
            assertThat(next.text()).isEqualTo("after the pongs");
            client.sendClose(1000, "");
            assertThat(skipProxyPings(client, true).closeCode()).isEqualTo(1000);
        }
        assertThat(events.nextClose().backendCode()).isEqualTo(1000);
    }

    @Test
    void dropsAClientThatStopsAnsweringAndClosesTheBackendWith1001() throws Exception {
        TestBackend backend = startProxyToLiveBackend(Duration.ofHours(1));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/gone"))) {
            // The backend answers the proxy's pings (Jetty's automatic pong); the client never does.
            long connected = System.nanoTime();
            TestBackend.Closed closed = backend.closes.poll(10, TimeUnit.SECONDS);
            assertFoundWithinSeconds(connected, 5);
            assertThat(closed).as("the backend's close")
                    .isEqualTo(new TestBackend.Closed(1001, "client not responding"));
            assertThat(events.nextClose().clientCode()).isEqualTo(1006);
            RawWebSocket.Frame frame = client.read();
            assertThat(frame.opcode()).as("what the client was sent before its connection was dropped")
                    .isEqualTo(RawWebSocket.PING);
            assertThat(frame.payload()).isEqualTo(PROXY_PING);
            assertThatThrownBy(() -> skipProxyPings(client, false)).as("the client's connection, dropped")
                    .isInstanceOf(IOException.class).isNotInstanceOf(SocketTimeoutException.class);
        }
    }

    @Test
    void keepsAQuietSessionWithLivePeersOpenAndRelaysOnlyThePeersOwnPingsAndPongs() throws Exception {
        TestBackend backend = startProxyToLiveBackend(Duration.ofHours(1));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/quiet"))) {
            // Ten intervals, five times what it takes to find a dead peer: the proxy pings, the client answers, and
            // neither peer is dropped. Any other frame fails the test (a close, or a relayed pong of the proxy's).
            for (int i = 0; i < 10; i++) {
                answerProxyPing(client, i);
            }
            client.send(true, RawWebSocket.TEXT, "still here".getBytes(StandardCharsets.UTF_8));
            assertThat(skipProxyPings(client, true).text()).isEqualTo("still here");

            // A ping of the client's own goes to the backend, and the backend's pong comes back.
            client.send(true, RawWebSocket.PING, "mine".getBytes(StandardCharsets.UTF_8));
            RawWebSocket.Frame pong = skipProxyPings(client, true);
            assertThat(pong.opcode()).isEqualTo(RawWebSocket.PONG);
            assertThat(pong.text()).isEqualTo("mine");

            client.sendClose(1000, "bye");
            assertThat(skipProxyPings(client, true).closeCode()).isEqualTo(1000);
        }
        assertThat(events.nextClose().backendCode()).isEqualTo(1000);
        assertThat(backend.pongs).as("the client's answers to the proxy's pings, relayed to the backend").isEmpty();
    }

    @Test
    void closesAnIdleSessionWhoseOnlyTrafficIsTheProxysPings() throws Exception {
        TestBackend backend = startProxyToLiveBackend(Duration.ofSeconds(1));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/idle"))) {
            // While the client sends a message at each of the proxy's pings, the session outlives its idle timeout
            // (eight intervals and their round trips are more than one second).
            for (int i = 0; i < 8; i++) {
                answerProxyPing(client, i);
                client.send(true, RawWebSocket.TEXT, ("message " + i).getBytes(StandardCharsets.UTF_8));
                assertThat(skipProxyPings(client, true).text()).isEqualTo("message " + i);
            }
            // Then the client only answers the pings: they do not count, and the idle timeout closes the session.
            int pings = 0;
            RawWebSocket.Frame frame;
            while ((frame = client.read()).opcode() == RawWebSocket.PING && pings < 100) {
                pings++;
                client.send(true, RawWebSocket.PONG, frame.payload());
            }
            assertCloseFrame(frame, 1001, "idle timeout");
            assertThat(pings).as("pings answered while idle").isGreaterThanOrEqualTo(2);
        }
        assertThat(backend.closes.poll(10, TimeUnit.SECONDS)).isEqualTo(new TestBackend.Closed(1001, "idle timeout"));
    }

    @Test
    void rejectsANegativeIntervalOrOneNotShorterThanTheIdleTimeoutAndTakesZeroForNoPings() {
        assertThatThrownBy(() -> TimeoutPolicy.custom().ping(Duration.ofSeconds(-1)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("ping: PT-1S (expected: >= 0)");
        assertThatThrownBy(() -> TimeoutPolicy.custom().ping(Duration.ofMillis(99)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("ping: PT0.099S (expected: at least PT0.1S, or 0)");
        assertThatThrownBy(() -> TimeoutPolicy.custom().idle(Duration.ofSeconds(30)).ping(Duration.ofSeconds(30))
                .build())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("ping: PT30S (expected: shorter than the idle timeout PT30S, or 0)");
        assertThat(TimeoutPolicy.custom().idle(Duration.ZERO).ping(Duration.ofHours(2)).build().pingInterval())
                .as("with no idle timeout").isEqualTo(Duration.ofHours(2));
        assertThat(TimeoutPolicy.custom().ping(Duration.ZERO).build().pingInterval()).isZero();
        assertThat(TimeoutPolicy.ofDefaults().pingInterval()).isZero();
    }

    /** Reads the next frame the backend gets, which must be the proxy's ping. */
    private static void readProxyPing(InputStream in) throws IOException {
        RawFrames.Frame frame = RawFrames.read(in);
        if (frame.opcode() != RawFrames.PING || !Arrays.equals(frame.payload(), PROXY_PING)) {
            throw new IOException("expected the proxy's ping, got opcode " + frame.opcode());
        }
    }

    /** Reads the next frame, which must be the proxy's ping, and answers it. */
    private static void answerProxyPing(RawWebSocket client, int index) throws IOException {
        RawWebSocket.Frame frame = client.read();
        assertThat(frame.opcode()).as("frame %d", index).isEqualTo(RawWebSocket.PING);
        assertThat(frame.payload()).as("frame %d", index).isEqualTo(PROXY_PING);
        client.send(true, RawWebSocket.PONG, frame.payload());
    }

    /**
     * Reads the next frame that is not one of the proxy's pings, answering each with a pong when {@code answer}.
     */
    private static RawWebSocket.Frame skipProxyPings(RawWebSocket client, boolean answer) throws IOException {
        for (int i = 0; i < 50; i++) {
            RawWebSocket.Frame frame = client.read();
            if (frame.opcode() != RawWebSocket.PING || !Arrays.equals(frame.payload(), PROXY_PING)) {
                return frame;
            }
            if (answer) {
                client.send(true, RawWebSocket.PONG, frame.payload());
            }
        }
        throw new AssertionError("fifty pings and nothing else");
    }

    /**
     * A dead peer is found within a few intervals (two, plus the time the session took to fall silent), where the idle
     * timeout would take an hour; the bound leaves room for a loaded machine.
     */
    private static void assertFoundWithinSeconds(long since, long seconds) {
        assertThat(Duration.ofNanos(System.nanoTime() - since)).as("time to find the dead peer")
                .isLessThan(Duration.ofSeconds(seconds));
    }

}
