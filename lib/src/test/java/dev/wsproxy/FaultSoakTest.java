package dev.wsproxy;

import static dev.wsproxy.RawFrames.bytes;
import static dev.wsproxy.RawWebSocket.assertCloseFrame;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.EOFException;
import java.io.IOException;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

import org.awaitility.core.ConditionTimeoutException;
import org.eclipse.jetty.io.ArrayByteBufferPool;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.websocket.api.Callback;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Matrix row L2, a randomised fault soak: 2,000 sessions, 32 at a time, through one route whose backends are two
 * {@link TestBackend}s, a {@link RawBackend} and a closed port (row B4), tried in the order each session's query names
 * them. A {@link Random} with a fixed seed gives each session one fate before any runs, so that a run can be replayed:
 * a clean close from the client, or from the backend with a code from 3000 to 3999 and a reason (relayed as they are);
 * a client that resets its connection or ends its stream without a close frame (M6); a backend that drops its
 * connection without a close frame (M2) or resets it in the middle of a fragmented message (M3); a client that closes
 * in the middle of a fragmented message; an invalid frame from the client (F1, F2, F3, F4, F5, F7); a handshake to
 * the closed port alone (502), or with a working backend after it (failover, then a normal session).
 *
 * <p>Each session's outcome is checked exactly, three ways: what its client saw (the close code and reason, the end of
 * the stream, the status); what the proxy reported for it to a listener (who closed first and the code and reason each
 * peer sent, the backend it was on, one failed connect for a session sent to the closed port and none for any other);
 * and, added up per backend, the closes each backend received. Then nothing may be left: no proxy session, no
 * connection slot (the limits are on, so that slots are counted), no backend's active-session count or handshake slot
 * ({@code WebSocketProxyHandler.held()}), no session on the Jetty client or the backends, no connection on the raw
 * backend; and each backend counts exactly the sessions it served, the closed port none. The seed is in every failure
 * message; {@code -Dwsproxy.soak.seed=N} replays another, and {@code -Dwsproxy.soak.sessions=N} runs another number of
 * sessions.
 *
 * <p>No buffer may be left either (the matrix's leak check, {@code ArrayByteBufferPool.Tracking.getLeaks()} empty):
 * the proxy is mounted in a {@link Server} of the test's, built as {@link WebSocketProxy#handler()} recommends
 * ({@link WebSocketProxy#threadPool()}, {@link WebSocketProxy#serverConnector}) but with a tracking buffer pool, as a
 * standalone proxy's server takes no pool from outside. Every buffer the proxy takes comes from its server's pool: the
 * client legs' (Jetty's server-side WebSocket components), the backend handshakes' (the backend {@code HttpClient})
 * and the backend legs' (their WebSocket components read and flush through a direct-buffer view of the same pool), so
 * the one pool covers both legs. A frame callback the relay never completes, on either leg, leaves its network buffer
 * in it. The test's own clients and backends use pools of their own, not tracked.
 */
class FaultSoakTest {

    private static final long SEED = Long.getLong("wsproxy.soak.seed", 0x4C32_50AAL);
    /** 2,000; {@code -Dwsproxy.soak.sessions=10000} for the matrix's figure. */
    private static final int SESSIONS = Integer.getInteger("wsproxy.soak.sessions", 2_000);
    private static final int CONCURRENCY = 32;
    /** For all sessions together, which take 4 to 9 s on a loaded 2-core machine. */
    private static final Duration BUDGET = Duration.ofMillis(Math.max(40_000, SESSIONS * 20L));

    /** What happens to one session. */
    enum Fate {
        /** A Jetty client closes with 1000 and a reason of its own, and gets the backend's answer. */
        CLIENT_CLOSES,
        /** The backend closes with a code from 3000 to 3999 and a reason, which the Jetty client gets as they are. */
        BACKEND_CLOSES,
        /** The client resets its connection (M6): the backend gets 1001. */
        CLIENT_RESETS,
        /** The client ends its stream without a close frame (M6): the backend gets 1001, the client the end. */
        CLIENT_ENDS_STREAM,
        /** The backend drops its connection without a close frame (M2): the client gets 1014. */
        BACKEND_DROPS,
        /** The raw backend sends the first fragment of a message and resets (M3): 1014, no final frame. */
        BACKEND_RESETS_MID_MESSAGE,
        /** The client sends the first fragment of a message, then closes: the close completes end to end. */
        CLIENT_CLOSES_MID_MESSAGE,
        /** The client sends a frame that breaks RFC 6455: it gets 1002, the backend 1001. */
        CLIENT_SENDS_INVALID_FRAME,
        /** The handshake goes to the closed port and nowhere else (B4): 502. */
        BACKEND_REFUSES,
        /** The handshake goes to the closed port first, then fails over to a backend that works (B4). */
        FAILS_OVER
    }

    /** Frames that break RFC 6455, each answered with 1002 (as in FramingViolationsTest). */
    private static final List<byte[]> INVALID_FRAMES = List.of(
            bytes(0x81, 0x02, 'h', 'i'),                        // unmasked
            bytes(0xC1, 0x82, 0, 0, 0, 0, 'h', 'i'),            // RSV1 without an extension
            bytes(0x83, 0x82, 0, 0, 0, 0, 'h', 'i'),            // unknown opcode 0x3
            bytes(0x09, 0x81, 0, 0, 0, 0, 'p'),                 // fragmented ping
            bytes(0x80, 0x81, 0, 0, 0, 0, 'x'),                 // continuation without a start
            bytes(0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE7));         // close code 999

    /** One session's fate and the values it uses, all drawn from the seeded random before any session runs. */
    record Plan(int index, Fate fate, String backend, int closeCode, int invalidFrame) {
        String path() {
            return "/ws/s" + index;
        }

        /** The backends the selector is asked to try, in order. */
        String to() {
            return switch (fate) {
                case BACKEND_RESETS_MID_MESSAGE -> "raw";
                case BACKEND_REFUSES -> "closed";
                case FAILS_OVER -> "closed," + backend;
                default -> backend;
            };
        }

        /** The backend the session ends up on, or {@code null} when it never opens. */
        String servedBy() {
            return fate == Fate.BACKEND_REFUSES ? null : fate == Fate.BACKEND_RESETS_MID_MESSAGE ? "raw" : backend;
        }

        @Override
        public String toString() {
            return "session " + index + " " + fate + " to=" + to()
                    + (fate == Fate.BACKEND_CLOSES ? " code=" + closeCode : "")
                    + (fate == Fate.CLIENT_SENDS_INVALID_FRAME ? " frame=" + invalidFrame : "");
        }
    }

    /** What the proxy's listener reported for one session. */
    record Reported(String backend, SessionClose close) {
    }

    private final Map<String, Reported> reported = new ConcurrentHashMap<>();
    private final Map<String, Integer> rejected = new ConcurrentHashMap<>();
    private final Map<String, List<String>> connectFailures = new ConcurrentHashMap<>();
    private final Map<String, String> names = new ConcurrentHashMap<>();
    private final List<String> failures = Collections.synchronizedList(new ArrayList<>());
    private final Map<Fate, Long> slowest = new ConcurrentHashMap<>();

    private TestBackend b1;
    private TestBackend b2;
    private RawBackend raw;
    private Backend closed;
    private WebSocketProxy proxy;
    private Clients clients;
    private ArrayByteBufferPool.Tracking buffers;
    private Server server;
    private ServerConnector connector;

    @BeforeEach
    void start() throws Exception {
        b1 = new TestBackend("b1");
        b2 = new TestBackend("b2");
        raw = RawBackend.upgradingThen((socket, out) -> {
            out.write(RawFrames.encode(false, RawFrames.TEXT, "part".getBytes(StandardCharsets.UTF_8), false));
            out.flush();
            socket.setSoLinger(true, 0);
            socket.close();
        });
        closed = Backend.of("ws://127.0.0.1:" + Clients.closedPort());
        Map<String, Backend> byName = Map.of("b1", b1.backend(), "b2", b2.backend(), "raw", raw.backend(),
                "closed", closed);
        byName.forEach((name, backend) -> names.put(backend.uri().toString(), name));
        // Tries the backends named in the query, in order, among the candidates: a failed one is no longer a candidate.
        BackendSelector byQuery = context -> {
            for (String name : context.queryParameter("to").split(",")) {
                Backend wanted = byName.get(name);
                for (BackendStatus candidate : context.candidates()) {
                    if (candidate.backend().equals(wanted)) {
                        return wanted;
                    }
                }
            }
            return null;
        };
        proxy = ProxyBuilder.create()
                // Limits on, so that the slots they take are counted and must all be given back.
                .maxConnections(10_000)
                .maxConnectionsPerIp(10_000)
                .route("/ws/", r -> r.backends(b1.backend(), b2.backend(), raw.backend(), closed)
                        .backendSelector(byQuery)
                        // The closed port stays a candidate, so that every session meant for it tries it.
                        .passiveHealth(0, Duration.ofSeconds(10))
                        .failover(2, Duration.ofSeconds(10)))
                .listener(new ProxyListener() {
                    @Override
                    public void onSessionClosed(ProxySession session, SessionClose close) {
                        reported.put(session.backendUri().getRawPath(),
                                new Reported(names.get(session.backend().uri().toString()), close));
                    }

                    @Override
                    public void onHandshakeRejected(HandshakeRequest request, int status, String reason) {
                        rejected.put(request.uri().getRawPath(), status);
                    }

                    @Override
                    public void onBackendConnectFailed(HandshakeRequest request, Backend backend, Throwable cause) {
                        connectFailures.computeIfAbsent(request.uri().getRawPath(),
                                path -> Collections.synchronizedList(new ArrayList<>()))
                                .add(names.get(backend.uri().toString()));
                    }
                })
                .build();
        buffers = new ArrayByteBufferPool.Tracking();
        server = new Server(WebSocketProxy.threadPool(), null, buffers);
        connector = WebSocketProxy.serverConnector(server);
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        server.setHandler(proxy.handler());
        server.start();
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        try {
            Clients.tearDown(proxy, clients, b1, b2, raw);
        } finally {
            if (server != null) {
                server.stop();
            }
        }
    }

    @Test
    void endsEverySessionAsItsFaultRequiresAndLeavesNothingBehind() throws Exception {
        List<Plan> plans = plans(new Random(SEED));
        ExecutorService pool = Executors.newFixedThreadPool(CONCURRENCY);
        long start = System.nanoTime();
        try {
            for (Plan plan : plans) {
                pool.execute(() -> {
                    long started = System.nanoTime();
                    try {
                        play(plan);
                    } catch (Throwable t) {
                        fail(plan, "client: " + t);
                    }
                    slowest.merge(plan.fate(), (System.nanoTime() - started) / 1_000_000, Math::max);
                });
            }
            pool.shutdown();
            assertThat(pool.awaitTermination(BUDGET.toMillis(), TimeUnit.MILLISECONDS))
                    .as("seed %d: all %d sessions played within %s", SEED, SESSIONS, BUDGET).isTrue();
        } finally {
            pool.shutdownNow();
        }
        Duration took = Duration.ofNanos(System.nanoTime() - start);
        System.out.printf("fault soak: seed %d, %d sessions in %d ms; the slowest of each fate (ms): %s%n", SEED,
                SESSIONS, took.toMillis(), new TreeMap<>(slowest));
        assertNoFailures("what the clients saw");

        long opened = plans.stream().filter(plan -> plan.servedBy() != null).count();
        try {
            Clients.assertNoLeaks(proxy, clients, b1, b2);
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(raw.openConnections())
                    .as("raw backend connections left open").isZero());
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(reported.size())
                    .as("sessions reported closed").isEqualTo(opened));
        } catch (AssertionError | ConditionTimeoutException e) {
            throw new AssertionError("seed " + SEED + ": " + e.getMessage(), e);
        }
        for (Plan plan : plans) {
            checkReported(plan);
        }
        assertNoFailures("what the proxy reported");
        checkBackends(plans);
        assertNoFailures("what the backends saw");
        assertNoBufferLeaks();
    }

    /**
     * Every buffer the proxy took from its server's pool was given back, once every session and connection has ended
     * (a connection may still be closing when its session is reported: waits up to 10 s).
     */
    private void assertNoBufferLeaks() {
        try {
            await().atMost(Duration.ofSeconds(10)).until(() -> buffers.getLeaks().isEmpty());
        } catch (ConditionTimeoutException e) {
            List<ArrayByteBufferPool.Tracking.TrackedBuffer> leaks = new ArrayList<>(buffers.getLeaks());
            throw new AssertionError("seed " + SEED + ": " + leaks.size() + " buffers never released; the first:\n"
                    + leaks.stream().limit(2).map(ArrayByteBufferPool.Tracking.TrackedBuffer::dump)
                            .reduce((a, b) -> a + "\n" + b).orElse(""), e);
        }
    }

    private static List<Plan> plans(Random random) {
        Fate[] fates = Fate.values();
        List<Plan> plans = new ArrayList<>();
        for (int i = 0; i < SESSIONS; i++) {
            plans.add(new Plan(i, fates[random.nextInt(fates.length)], random.nextBoolean() ? "b1" : "b2",
                    3000 + random.nextInt(1000), random.nextInt(INVALID_FRAMES.size())));
        }
        return plans;
    }

    private URI uri(Plan plan) {
        return URI.create("ws://" + authority() + plan.path() + "?to=" + plan.to());
    }

    /** The test server's connector, which the proxy is mounted behind. */
    private String authority() {
        return "127.0.0.1:" + connector.getLocalPort();
    }

    /** Runs one session and checks what its client sees; throws on anything else. */
    private void play(Plan plan) throws Exception {
        int n = plan.index();
        switch (plan.fate()) {
            case CLIENT_CLOSES -> {
                WsRecorder client = clients.connect(uri(plan));
                client.sendText("m" + n);
                assertThat(client.nextText()).isEqualTo("m" + n);
                client.session.close(1000, "c" + n, Callback.NOOP);
                assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1000, "c" + n));
            }
            case BACKEND_CLOSES -> {
                WsRecorder client = clients.connect(uri(plan));
                client.sendText("close:" + plan.closeCode() + ":b" + n);
                assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(plan.closeCode(), "b" + n));
            }
            case FAILS_OVER -> {
                WsRecorder client = clients.connect(uri(plan));
                client.sendText("whoami");
                assertThat(client.nextText()).isEqualTo(plan.backend());
                client.session.close(1000, "f" + n, Callback.NOOP);
                assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1000, "f" + n));
            }
            case CLIENT_RESETS -> {
                RawWebSocket client = echoed(plan);
                client.abort();
            }
            case CLIENT_ENDS_STREAM -> {
                try (RawWebSocket client = echoed(plan)) {
                    client.socket.shutdownOutput();
                    assertThatThrownBy(client::read).as("the end of the stream, no frame")
                            .isInstanceOf(EOFException.class);
                }
            }
            case BACKEND_DROPS -> {
                try (RawWebSocket client = echoed(plan)) {
                    client.send(true, RawWebSocket.TEXT, "drop".getBytes(StandardCharsets.UTF_8));
                    assertCloseFrame(client.read(), 1014, "backend connection lost");
                    assertDropped(client);
                }
            }
            case BACKEND_RESETS_MID_MESSAGE -> {
                try (RawWebSocket client = RawWebSocket.connect(uri(plan))) {
                    RawWebSocket.Frame frame = client.read();
                    while (frame.opcode() != RawWebSocket.CLOSE) {
                        assertThat(frame.fin()).as("a frame the backend never finished, relayed as final").isFalse();
                        frame = client.read();
                    }
                    assertCloseFrame(frame, 1014, "backend connection lost");
                    assertDropped(client);
                }
            }
            case CLIENT_CLOSES_MID_MESSAGE -> {
                try (RawWebSocket client = RawWebSocket.connect(uri(plan))) {
                    client.send(false, RawWebSocket.TEXT, ("frag" + n).getBytes(StandardCharsets.UTF_8));
                    client.sendClose(1000, "m" + n);
                    assertCloseFrame(client.read(), 1000, "m" + n);
                }
            }
            case CLIENT_SENDS_INVALID_FRAME -> {
                try (RawWebSocket client = RawWebSocket.connect(uri(plan))) {
                    client.sendRaw(INVALID_FRAMES.get(plan.invalidFrame()));
                    RawWebSocket.Frame frame = client.read();
                    assertThat(frame.opcode()).as("a close frame").isEqualTo(RawWebSocket.CLOSE);
                    assertThat(frame.closeCode()).isEqualTo(1002);
                    assertDropped(client);
                }
            }
            case BACKEND_REFUSES -> {
                try (RawHttp client = RawHttp.over(new Socket("127.0.0.1", connector.getLocalPort()))) {
                    RawHttp.Response response = client.exchange(RawHttp.Request.upgrade(
                            plan.path() + "?to=" + plan.to(), authority()));
                    assertThat(response.status()).as(response.toString()).isEqualTo(502);
                    assertThat(response.header("Connection")).isEqualTo("close");
                }
            }
            default -> throw new AssertionError(plan.fate());
        }
    }

    /** A raw client whose session carried one message each way. */
    private RawWebSocket echoed(Plan plan) throws IOException {
        RawWebSocket client = RawWebSocket.connect(uri(plan));
        client.send(true, RawWebSocket.TEXT, ("m" + plan.index()).getBytes(StandardCharsets.UTF_8));
        RawWebSocket.Frame echo = client.read();
        assertThat(echo.text()).isEqualTo("m" + plan.index());
        return client;
    }

    /** After a close with an error code the proxy drops the connection: an end of stream or a reset, not silence. */
    private static void assertDropped(RawWebSocket client) {
        assertThatThrownBy(client::read).isInstanceOf(IOException.class)
                .isNotInstanceOf(SocketTimeoutException.class);
    }

    /** Checks what the proxy reported for one session: how it ended, where, and which connects failed. */
    private void checkReported(Plan plan) {
        String path = plan.path();
        int n = plan.index();
        List<String> failed = connectFailures.getOrDefault(path, List.of());
        boolean triesClosed = plan.fate() == Fate.BACKEND_REFUSES || plan.fate() == Fate.FAILS_OVER;
        if (!failed.equals(triesClosed ? List.of("closed") : List.of())) {
            fail(plan, "failed backend connects " + failed);
        }
        Integer status = rejected.get(path);
        if (plan.fate() == Fate.BACKEND_REFUSES) {
            if (status == null || status != 502 || reported.containsKey(path)) {
                fail(plan, "rejected with " + status + ", reported " + reported.get(path));
            }
            return;
        }
        if (status != null) {
            fail(plan, "rejected with " + status);
        }
        Reported actual = reported.get(path);
        SessionClose.Initiator client = SessionClose.Initiator.CLIENT;
        SessionClose.Initiator backend = SessionClose.Initiator.BACKEND;
        SessionClose.Initiator proxy = SessionClose.Initiator.PROXY;
        Reported expected = switch (plan.fate()) {
            case CLIENT_CLOSES -> expected(plan, client, 1000, "c" + n, 1000, "c" + n);
            case BACKEND_CLOSES -> expected(plan, backend, plan.closeCode(), "b" + n, plan.closeCode(), "b" + n);
            case FAILS_OVER -> expected(plan, client, 1000, "f" + n, 1000, "f" + n);
            case CLIENT_CLOSES_MID_MESSAGE -> expected(plan, client, 1000, "m" + n, 1000, "m" + n);
            case CLIENT_RESETS, CLIENT_ENDS_STREAM -> expected(plan, client, 1006, "", 1006, "");
            // Jetty's parser failed the client leg with 1002: the proxy ended the session.
            case CLIENT_SENDS_INVALID_FRAME -> expected(plan, proxy, 1006, "", 1006, "");
            case BACKEND_DROPS, BACKEND_RESETS_MID_MESSAGE -> expected(plan, backend, 1006, "", 1006, "");
            case BACKEND_REFUSES -> throw new AssertionError(plan);
        };
        if (actual == null || !withoutDuration(actual).equals(expected)) {
            fail(plan, "reported " + actual + ", expected " + expected);
        }
    }

    private static Reported expected(Plan plan, SessionClose.Initiator initiator, int clientCode, String clientReason,
            int backendCode, String backendReason) {
        return new Reported(plan.servedBy(), new SessionClose(initiator, clientCode, clientReason, backendCode,
                backendReason, Duration.ZERO));
    }

    private static Reported withoutDuration(Reported reported) {
        SessionClose close = reported.close();
        return new Reported(reported.backend(), new SessionClose(close.initiator(), close.clientCode(),
                close.clientReason(), close.backendCode(), close.backendReason(), Duration.ZERO));
    }

    /** The closes each backend received, added up, and the raw backend's connections. */
    private void checkBackends(List<Plan> plans) {
        for (TestBackend backend : List.of(b1, b2)) {
            List<TestBackend.Closed> expected = new ArrayList<>();
            int sessions = 0;
            for (Plan plan : plans) {
                if (!backend.id.equals(plan.servedBy())) {
                    continue;
                }
                sessions++;
                int n = plan.index();
                expected.add(switch (plan.fate()) {
                    case CLIENT_CLOSES -> new TestBackend.Closed(1000, "c" + n);
                    case BACKEND_CLOSES -> new TestBackend.Closed(plan.closeCode(), "b" + n);
                    case FAILS_OVER -> new TestBackend.Closed(1000, "f" + n);
                    case CLIENT_CLOSES_MID_MESSAGE -> new TestBackend.Closed(1000, "m" + n);
                    case CLIENT_RESETS, CLIENT_ENDS_STREAM, CLIENT_SENDS_INVALID_FRAME ->
                            new TestBackend.Closed(1001, "client connection lost");
                    case BACKEND_DROPS -> new TestBackend.Closed(1006, "Session Closed");
                    default -> throw new AssertionError(plan);
                });
            }
            int count = expected.size();
            try {
                await().atMost(Duration.ofSeconds(10)).until(() -> backend.closes.size() >= count);
            } catch (ConditionTimeoutException e) {
                failures.add("backend " + backend.id + " received " + backend.closes.size() + " closes, expected "
                        + count);
            }
            List<TestBackend.Closed> unexpected = new ArrayList<>(backend.closes);
            List<TestBackend.Closed> missing = new ArrayList<>();
            for (TestBackend.Closed close : expected) {
                if (!unexpected.remove(close)) {
                    missing.add(close);
                }
            }
            if (!missing.isEmpty() || !unexpected.isEmpty()) {
                failures.add("backend " + backend.id + " did not receive the closes " + first(missing)
                        + " and received the closes " + first(unexpected));
            }
            if (backend.upgrades.size() != sessions) {
                failures.add("backend " + backend.id + " received " + backend.upgrades.size() + " upgrades, expected "
                        + sessions);
            }
        }
        long resets = plans.stream().filter(plan -> plan.fate() == Fate.BACKEND_RESETS_MID_MESSAGE).count();
        if (raw.connections.get() != resets) {
            failures.add("raw backend connections " + raw.connections.get() + ", expected " + resets);
        }
        Map<String, Long> totals = new HashMap<>();
        for (BackendStatus status : proxy.backendStatus("/ws/")) {
            totals.put(names.get(status.backend().uri().toString()), status.totalSessions());
            if (status.activeSessions() != 0) {
                failures.add(status.backend() + " has active sessions " + status.activeSessions());
            }
        }
        Map<String, Long> expectedTotals = new HashMap<>(Map.of("b1", 0L, "b2", 0L, "raw", 0L, "closed", 0L));
        plans.stream().filter(plan -> plan.servedBy() != null)
                .forEach(plan -> expectedTotals.merge(plan.servedBy(), 1L, Long::sum));
        if (!totals.equals(expectedTotals)) {
            failures.add("sessions per backend " + totals + ", expected " + expectedTotals);
        }
    }

    private static <T> List<T> first(List<T> list) {
        return list.subList(0, Math.min(10, list.size()));
    }

    private void fail(Plan plan, String what) {
        String line = what.replaceAll("\\s*\\R\\s*", " ");
        failures.add(plan + ": " + (line.length() > 400 ? line.substring(0, 400) + "..." : line));
    }

    private void assertNoFailures(String what) {
        List<String> sample;
        synchronized (failures) {
            sample = failures.stream().limit(20).toList();
        }
        assertThat(failures.size()).as("seed %d (replay with -Dwsproxy.soak.seed=%d): %s; failures, first ones:%n%s",
                SEED, SEED, what, String.join("\n", sample)).isZero();
    }

}
