package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;

import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.thread.ScheduledExecutorScheduler;
import org.eclipse.jetty.util.thread.Scheduler;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import dev.wsproxy.RawHttp.Request;

/**
 * The cap on backend handshakes in flight per backend ({@code maxPendingBackendHandshakes}): one more to a backend at
 * its cap gets {@code 503} at once without connecting, or fails over to another backend without the busy one being
 * marked down; and every handshake gives its slot back however it ends (answer, refusal, invalid {@code 101}, connect
 * timeout, client gone, proxy stopped).
 */
class BackendHandshakeCapTest {

    /** Far beyond every wait in these tests: a handshake that is not capped would hang instead of failing fast. */
    private static final Duration LONG_CONNECT_TIMEOUT = Duration.ofSeconds(60);
    private static final Duration SHORT_CONNECT_TIMEOUT = Duration.ofMillis(500);

    private final List<AutoCloseable> resources = new ArrayList<>();
    private final List<TestBackend> testBackends = new ArrayList<>();
    private final RecordingListener listener = new RecordingListener();
    private WebSocketProxy proxy;

    @AfterEach
    void stop() throws Exception {
        Clients.stopAfterLeakCheck(proxy, resources, testBackends.toArray(TestBackend[]::new));
        if (proxy != null) {
            assertThat(proxy.backendStatus("/ws/")).as("no handshake slot left taken after the proxy stopped")
                    .extracting(BackendStatus::pendingHandshakes).containsOnly(0);
        }
    }

    private <T extends AutoCloseable> T resource(T resource) {
        resources.add(resource);
        return resource;
    }

    /** A WebSocket backend that answers {@code whoami} with {@code name}, left-over sessions checked after the test. */
    private TestBackend testBackend(String name) throws Exception {
        TestBackend backend = resource(new TestBackend(name));
        testBackends.add(backend);
        return backend;
    }

    /** A backend that accepts connections and reads upgrade requests, and never answers them. */
    private RawBackend silentBackend() throws Exception {
        return resource(RawBackend.answering(RawBackend.silent()));
    }

    private void startProxy(Duration connectTimeout, UnaryOperator<ProxyBuilder> configuration) throws Exception {
        proxy = configuration.apply(ProxyBuilder.create()
                        .listen("127.0.0.1", 0)
                        .timeoutPolicy(TimeoutPolicy.custom().connect(connectTimeout).build())
                        .listener(listener))
                .build();
        proxy.start();
    }

    private Request upgrade() {
        return Request.upgrade("/ws/chat", RawHttp.host(proxy));
    }

    /** Opens a client connection and sends an upgrade request without waiting for the answer. */
    private RawHttp sendUpgrade() throws Exception {
        RawHttp client = resource(RawHttp.connect(proxy));
        client.send(upgrade());
        return client;
    }

    /** Sends an upgrade request and waits until {@code backend} has read it: a backend handshake in flight. */
    private RawHttp pendingUpgrade(RawBackend backend) throws Exception {
        RawHttp client = sendUpgrade();
        backend.nextRequest();
        return client;
    }

    private BackendStatus status(int index) {
        return proxy.backendStatus("/ws/").get(index);
    }

    /**
     * A backend whose accept queue is full drops SYNs, so a connect to it stays pending. When the proxy gives up (its
     * connect timeout, 504) it closes that socket at once: otherwise it would stay open until Jetty's own connect
     * timeout, the longest of all routes (60 s here), and the cap would bound handshakes but not sockets.
     */
    @Test
    void closesTheSocketOfAConnectTheBackendNeverAnswers() throws Exception {
        ServerSocket full = resource(new ServerSocket(0, 1, InetAddress.getLoopbackAddress()));
        InetSocketAddress address = new InetSocketAddress(InetAddress.getLoopbackAddress(), full.getLocalPort());
        boolean pending = false;
        for (int i = 0; i < 8 && !pending; i++) {
            Socket queued = resource(new Socket());
            try {
                queued.connect(address, 300);
            } catch (SocketTimeoutException e) {
                pending = true;
            }
        }
        assertThat(pending).as("the backend's accept queue is full: connects stay pending").isTrue();
        startProxy(LONG_CONNECT_TIMEOUT, builder -> builder
                .route("/ws/", r -> r.backends(Backend.of("ws://127.0.0.1:" + full.getLocalPort()))
                        .timeoutPolicy(TimeoutPolicy.custom().connect(SHORT_CONNECT_TIMEOUT).build())));
        long before = openSockets();

        for (int i = 0; i < 5; i++) {
            try (RawHttp client = RawHttp.connect(proxy)) {
                assertThat(client.exchange(upgrade()).status()).isEqualTo(504);
            }
        }

        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(openSockets())
                .as("the proxy's sockets to the backend, closed when it gave up").isLessThanOrEqualTo(before));
        assertThat(status(0).pendingHandshakes()).isZero();
    }

    /** The sockets this JVM has open (Linux). */
    private static long openSockets() throws IOException {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.filter(fd -> {
                try {
                    return Files.readSymbolicLink(fd).toString().startsWith("socket:");
                } catch (IOException e) {
                    return false; // closed meanwhile
                }
            }).count();
        }
    }

    @Test
    void answers503AtOnceWithoutConnectingWhenTheBackendHasItsCapInFlight() throws Exception {
        RawBackend silent = silentBackend();
        startProxy(LONG_CONNECT_TIMEOUT, builder -> builder.maxPendingBackendHandshakes(2)
                .route("/ws/", silent.backend()));
        RawHttp first = pendingUpgrade(silent);
        RawHttp second = pendingUpgrade(silent);
        assertThat(status(0).pendingHandshakes()).isEqualTo(2);

        try (RawHttp third = RawHttp.connect(proxy)) {
            long started = System.nanoTime();
            RawHttp.Response response = third.exchange(upgrade());

            assertThat(response.status()).isEqualTo(503);
            assertThat(Duration.ofNanos(System.nanoTime() - started)).as("long before the connect timeout")
                    .isLessThan(Duration.ofSeconds(5));
            assertThat(response.header("Retry-After")).isEqualTo("5");
            assertThat(third.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        assertThat(silent.connections).as("the third handshake never connected").hasValue(2);
        assertThat(status(0).pendingHandshakes()).isEqualTo(2);
        assertThat(listener.all(RecordingListener.Rejected.class)).singleElement().satisfies(rejected -> {
            assertThat(rejected.status()).isEqualTo(503);
            assertThat(rejected.reason()).isEqualTo("every backend busy: 2 handshakes pending to each");
        });
        assertThat(listener.all(RecordingListener.ConnectFailed.class)).as("the backend did not fail").isEmpty();

        silent.close();
        assertThat(first.readResponse().status()).isEqualTo(502);
        assertThat(second.readResponse().status()).isEqualTo(502);
        assertThat(status(0).pendingHandshakes()).as("given back when the backend failed").isZero();
    }

    /**
     * A selector that declines a session (a tenant it does not serve) while another backend of the route is at its
     * cap: the refusal is the selector's, {@code no backend available}. It was reported as {@code every backend busy},
     * sending an operator to a busy backend while a candidate was free and the selector had said no.
     */
    @Test
    void reportsASelectorsRefusalAsSuchWhileAnotherBackendIsBusy() throws Exception {
        RawBackend silent = silentBackend();
        TestBackend a = testBackend("a");
        startProxy(LONG_CONNECT_TIMEOUT, builder -> builder.maxPendingBackendHandshakes(1)
                .route("/ws/", r -> r.backends(silent.backend(), a.backend())
                        .backendSelector(context -> context.header("X-Tenant") != null ? null
                                : context.candidates().get(0).backend())));
        RawHttp pending = pendingUpgrade(silent);
        assertThat(status(0).pendingHandshakes()).isEqualTo(1);

        try (RawHttp declined = RawHttp.connect(proxy)) {
            assertThat(declined.exchange(upgrade().add("X-Tenant", "unknown")).status()).isEqualTo(503);
        }
        assertThat(listener.all(RecordingListener.Rejected.class)).singleElement()
                .extracting(RecordingListener.Rejected::reason).isEqualTo("no backend available");

        silent.close();
        assertThat(pending.readResponse().status()).as("failed over to a").isEqualTo(101);
        assertThat(pending.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
    }

    @Test
    void failsOverFromABusyBackendWithoutMarkingItDown() throws Exception {
        RawBackend silent = silentBackend();
        TestBackend a = testBackend("a");
        // A selector that picks the silent backend for the first and the third handshake, even when it is busy (so
        // not a candidate), and the first candidate otherwise: the third is offered the busy backend, then fails over.
        AtomicInteger calls = new AtomicInteger();
        startProxy(LONG_CONNECT_TIMEOUT, builder -> builder
                .passiveHealth(1, Duration.ofMinutes(1))
                .route("/ws/", r -> r.backends(silent.backend(), a.backend())
                        .maxPendingBackendHandshakes(2)
                        .backendSelector(context -> {
                            int call = calls.incrementAndGet();
                            return call == 1 || call == 3 ? silent.backend()
                                    : context.candidates().isEmpty() ? null : context.candidates().get(0).backend();
                        })));
        RawHttp first = pendingUpgrade(silent);
        RawHttp second = pendingUpgrade(silent);

        try (RawHttp third = RawHttp.connect(proxy)) {
            assertThat(third.exchange(upgrade()).status()).isEqualTo(101);
            third.sendText("whoami");
            assertThat(third.readFrame().text()).isEqualTo("a");

            assertThat(silent.connections).hasValue(2);
            assertThat(status(0).state()).as("busy, not broken").isEqualTo(BackendStatus.State.UP);
            assertThat(status(0).recentFailures()).isZero();
            assertThat(status(0).pendingHandshakes()).isEqualTo(2);
            assertThat(listener.all(RecordingListener.ConnectFailed.class)).isEmpty();
            assertThat(listener.all(RecordingListener.Rejected.class)).isEmpty();
            assertThat(third.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }

        // Now the busy backend fails its handshakes: they fail over too.
        silent.close();
        for (RawHttp client : List.of(first, second)) {
            assertThat(client.readResponse().status()).isEqualTo(101);
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        assertThat(status(0).pendingHandshakes()).isZero();
    }

    /**
     * {@code ProxySession.close} on a session still in its backend handshake ({@code sessions()} lists it): the
     * handshake ends at once, the client gets {@code 503}, the backend is not blamed and no other backend is tried.
     * (Before, the close timer cancelled the handshake as a failure: a passive-health failure, then failover, and the
     * closed session came back open on another backend.)
     */
    @Test
    void aSessionClosedDuringItsBackendHandshakeGets503WithoutBlameOrFailover() throws Exception {
        RawBackend silent = silentBackend();
        TestBackend a = testBackend("a");
        startProxy(LONG_CONNECT_TIMEOUT, builder -> builder
                .passiveHealth(1, Duration.ofMinutes(1))
                .route("/ws/", r -> r.backends(silent.backend(), a.backend())
                        .backendSelector(context -> context.candidates().get(0).backend())));
        RawHttp client = pendingUpgrade(silent);
        assertThat(proxy.sessions()).hasSize(1);
        ProxySession pending = proxy.sessions().get(0);
        assertThat(pending.openedAt()).isEqualTo(java.time.Instant.EPOCH);

        pending.close(4001, "kicked");

        assertThat(client.readResponse().status()).isEqualTo(503);
        assertThat(status(0).state()).isEqualTo(BackendStatus.State.UP);
        assertThat(status(0).recentFailures()).isZero();
        assertThat(status(0).pendingHandshakes()).isZero();
        assertThat(status(1).totalSessions()).as("no failover").isZero();
        assertThat(listener.all(RecordingListener.ConnectFailed.class)).isEmpty();
        assertThat(listener.all(RecordingListener.Rejected.class)).extracting(RecordingListener.Rejected::status)
                .containsExactly(503);
        await().untilAsserted(() -> assertThat(proxy.sessions()).isEmpty());
    }

    /**
     * The same close, made certain to come just after the backend handshake failed and before the proxy handled that
     * failure: the proxy is mounted in a server whose scheduler fires the connect timer as it is set, and the
     * application closes the pending session right then. Its cancel came too late to turn the failure into a
     * cancellation, so the handshake took the timeout for the backend's failure: blamed it and failed over, and the
     * client got its 101 from another backend, the application's close lost.
     */
    @Test
    void aSessionClosedJustAfterItsBackendHandshakeFailedGets503WithoutBlameOrFailover() throws Exception {
        RawBackend silent = silentBackend();
        TestBackend a = testBackend("a");
        Duration firedAtOnce = Duration.ofMillis(7_777); // no other task of the server is set for this long
        AtomicBoolean fired = new AtomicBoolean();
        Scheduler scheduler = new ScheduledExecutorScheduler() {
            @Override
            public Task schedule(Runnable task, long delay, TimeUnit unit) {
                if (unit.toMillis(delay) != firedAtOnce.toMillis() || !fired.compareAndSet(false, true)) {
                    return super.schedule(task, delay, unit);
                }
                task.run(); // the first connect timer fires: its future fails with a TimeoutException
                proxy.sessions().forEach(session -> session.close(4001, "kicked"));
                return () -> false;
            }
        };
        int port = mountFailingOverFrom(silent, a, firedAtOnce, scheduler);

        assertUpgradeGets(port, 503);
        assertNeitherBlamedNorFailedOver(a, "session closed before its upgrade");
    }

    /**
     * A scheduler that refuses the connect timer, as one does while the server stops: the proxy's end, not the
     * backend's. The client gets {@code 503} at once, the backend is not blamed and no other backend is tried. (Before,
     * the refusal was taken for the backend's failure: a passive-health failure, a WARN, then failover.)
     */
    @Test
    void aConnectTimerTheSchedulerRefusesGets503WithoutBlameOrFailover() throws Exception {
        RawBackend silent = silentBackend();
        TestBackend a = testBackend("a");
        Duration refused = Duration.ofMillis(7_777); // no other task of the server is set for this long
        int port = mountFailingOverFrom(silent, a, refused, schedulerFailingFor(refused, () -> {
            throw new RejectedExecutionException("stopping");
        }));

        assertUpgradeGets(port, 503);
        assertNeitherBlamedNorFailedOver(a, "proxy is shutting down");
    }

    /**
     * A fault of the proxy's own while a connect is set up, after its slots are taken and before its end is handled
     * (here the server's scheduler throws an {@link Error} for the connect timer): the backend connection is closed,
     * the handshake slot and the session given back, and the client gets {@code 502}; the backend is not blamed and no
     * other backend is tried. (Before, the fault reached the handshake's start: a 500, and the slot and the pending
     * session were never given back.)
     */
    @Test
    void aFaultWhileTheConnectIsSetUpGivesBackWhatItTookAndGets502() throws Exception {
        assertASchedulerFaultGivesBackWhatTheConnectTookAndGets502(new AssertionError("a fault of the scheduler's"));
    }

    /**
     * A scheduler that fails the connect timer with a runtime exception other than a refusal: a fault, as above, not
     * a stop. (Before, every runtime exception was taken for the scheduler's refusal: 503 "proxy is shutting down" from
     * a proxy that was not stopping, and the access line's {@code shutdown}.)
     */
    @Test
    void aRuntimeFaultOfTheSchedulerIsNoRefusalAndGets502() throws Exception {
        assertASchedulerFaultGivesBackWhatTheConnectTookAndGets502(
                new IllegalStateException("a fault of the scheduler's"));
    }

    /** Mounts the failover pair with a scheduler that throws {@code fault} for the connect timer, and checks the 502. */
    private void assertASchedulerFaultGivesBackWhatTheConnectTookAndGets502(Throwable fault) throws Exception {
        RawBackend silent = silentBackend();
        TestBackend a = testBackend("a");
        Duration faulty = Duration.ofMillis(7_777); // no other task of the server is set for this long
        int port = mountFailingOverFrom(silent, a, faulty, schedulerFailingFor(faulty, () -> {
            if (fault instanceof Error error) {
                throw error;
            }
            throw (RuntimeException) fault;
        }));

        assertUpgradeGets(port, 502);
        assertThat(status(0).pendingHandshakes()).isZero();
        assertNeitherBlamedNorFailedOver(a, "backend handshake could not start");
        await().untilAsserted(() -> assertThat(proxy.sessions()).isEmpty());
    }

    /** Sends one upgrade to the proxy mounted on {@code port} and checks that it gets {@code status}. */
    private static void assertUpgradeGets(int port, int status) throws Exception {
        try (RawHttp client = RawHttp.over(new Socket("127.0.0.1", port))) {
            RawHttp.Response response = client.exchange(Request.upgrade("/ws/x", "127.0.0.1:" + port));
            assertThat(response.status()).as("%s", response).isEqualTo(status);
        }
    }

    /**
     * The proxy's own end of a handshake failing over from the first backend to {@code other}: the first backend UP
     * with no failure counted, no failover (the other got nothing), no connect failure reported, and one refusal
     * reported with {@code reason}.
     */
    private void assertNeitherBlamedNorFailedOver(TestBackend other, String reason) {
        assertThat(status(0).state()).isEqualTo(BackendStatus.State.UP);
        assertThat(status(0).recentFailures()).isZero();
        assertThat(status(1).totalSessions()).as("no failover").isZero();
        assertThat(other.upgrades).as("handshakes the other backend got").isEmpty();
        assertThat(listener.all(RecordingListener.ConnectFailed.class)).isEmpty();
        assertThat(listener.all(RecordingListener.Rejected.class)).extracting(RecordingListener.Rejected::reason)
                .containsExactly(reason);
    }

    /** The server's scheduler, whose task set for {@code delay} (a connect timer) runs {@code fail} instead. */
    private static Scheduler schedulerFailingFor(Duration delay, Runnable fail) {
        return new ScheduledExecutorScheduler() {
            @Override
            public Task schedule(Runnable task, long taskDelay, TimeUnit unit) {
                if (unit.toMillis(taskDelay) == delay.toMillis()) {
                    fail.run();
                }
                return super.schedule(task, taskDelay, unit);
            }
        };
    }

    /**
     * Mounts a proxy in a server on {@code scheduler}, with a route that tries {@code first}, then may fail over to
     * {@code second}, each connect bounded by {@code connectTimeout}; returns the connector's port.
     */
    private int mountFailingOverFrom(RawBackend first, TestBackend second, Duration connectTimeout,
            Scheduler scheduler) throws Exception {
        proxy = ProxyBuilder.create()
                .timeoutPolicy(TimeoutPolicy.custom().connect(connectTimeout).build())
                .listener(listener)
                .passiveHealth(1, Duration.ofMinutes(1))
                .route("/ws/", r -> r.backends(first.backend(), second.backend())
                        .backendSelector(context -> context.candidates().get(0).backend())
                        .failover(2, Duration.ofMinutes(1)))
                .build();
        Server server = new Server(WebSocketProxy.threadPool(), scheduler, null);
        resources.add(server::stop);
        ServerConnector connector = WebSocketProxy.serverConnector(server);
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        server.setHandler(proxy.handler());
        server.start();
        return connector.getLocalPort();
    }

    /**
     * A backend at its cap is not a candidate: the default round robin sends every handshake to the other backend,
     * without spending a failover attempt on the busy one (one attempt only here, so each would get 503).
     */
    @Test
    void leavesABusyBackendOutOfTheCandidates() throws Exception {
        RawBackend silent = silentBackend();
        TestBackend a = testBackend("a");
        startProxy(LONG_CONNECT_TIMEOUT, builder -> builder
                .route("/ws/", r -> r.backends(silent.backend(), a.backend())
                        .maxPendingBackendHandshakes(1)
                        .failover(1, Duration.ofMinutes(1))));
        // Round robin starts with the first backend: the silent one, where this handshake stays pending.
        RawHttp pending = pendingUpgrade(silent);
        assertThat(status(0).pendingHandshakes()).isEqualTo(1);

        for (int i = 0; i < 4; i++) {
            try (RawHttp client = RawHttp.connect(proxy)) {
                assertThat(client.exchange(upgrade()).status()).as("handshake %d", i).isEqualTo(101);
                client.sendText("whoami");
                assertThat(client.readFrame().text()).isEqualTo("a");
                assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
            }
        }
        assertThat(silent.connections).hasValue(1);
        assertThat(listener.all(RecordingListener.Rejected.class)).isEmpty();
        silent.close();
        assertThat(pending.readResponse().status()).isEqualTo(502);
    }

    @ParameterizedTest(name = "backend answers {0}")
    @ValueSource(ints = {101, 403, 502})
    void givesTheSlotBackWhenTheBackendAnswers(int answer) throws Exception {
        RawBackend.Reply reply = switch (answer) {
            case 101 -> RawBackend.switching(null);
            case 403 -> RawBackend.raw("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
            default -> RawBackend.raw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    + "Connection: Upgrade\r\nSec-WebSocket-Accept: not-the-hash-of-the-key\r\n\r\n");
        };
        RawBackend held = resource(RawBackend.holding(reply));
        startProxy(LONG_CONNECT_TIMEOUT, builder -> builder.maxPendingBackendHandshakes(1)
                .route("/ws/", held.backend()));
        RawHttp first = pendingUpgrade(held);
        try (RawHttp refused = RawHttp.connect(proxy)) {
            assertThat(refused.exchange(upgrade()).status()).as("while the first is in flight").isEqualTo(503);
        }

        held.release();
        assertThat(first.readResponse().status()).isEqualTo(answer);
        assertThat(status(0).pendingHandshakes()).as("given back before the client got its answer").isZero();
        try (RawHttp next = RawHttp.connect(proxy)) {
            assertThat(next.exchange(upgrade()).status()).isEqualTo(answer);
            if (answer == 101) {
                assertThat(next.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
            }
        }
        if (answer == 101) {
            assertThat(first.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        assertThat(held.connections).hasValue(2);
    }

    @Test
    void givesTheSlotBackWhenTheHandshakeTimesOut() throws Exception {
        RawBackend silent = silentBackend();
        startProxy(SHORT_CONNECT_TIMEOUT, builder -> builder.failover(1, Duration.ofSeconds(30))
                .route("/ws/", r -> r.backends(silent.backend()).maxPendingBackendHandshakes(1)));
        RawHttp first = pendingUpgrade(silent);
        try (RawHttp refused = RawHttp.connect(proxy)) {
            assertThat(refused.exchange(upgrade()).status()).isEqualTo(503);
        }

        assertThat(first.readResponse().status()).isEqualTo(504);
        assertThat(status(0).pendingHandshakes()).isZero();
        try (RawHttp next = RawHttp.connect(proxy)) {
            assertThat(next.exchange(upgrade()).status()).as("connected, then timed out too").isEqualTo(504);
        }
        assertThat(silent.connections).hasValue(2);
        assertThat(status(0).pendingHandshakes()).isZero();
    }

    @Test
    void givesTheSlotsBackWhenTheClientsLeaveMidHandshake() throws Exception {
        RawBackend silent = silentBackend();
        startProxy(SHORT_CONNECT_TIMEOUT, builder -> builder.failover(1, Duration.ofSeconds(30))
                .route("/ws/", r -> r.backends(silent.backend()).maxPendingBackendHandshakes(2)));
        RawHttp first = pendingUpgrade(silent);
        RawHttp second = pendingUpgrade(silent);
        first.reset();
        second.close();

        // The backend handshakes go on without their clients until the connect timeout ends them.
        await().atMost(Duration.ofSeconds(10)).until(() -> status(0).pendingHandshakes() == 0);
        assertThat(silent.nextEnd(5)).isIn("eof", "reset");
        assertThat(silent.nextEnd(5)).isIn("eof", "reset");
        try (RawHttp next = RawHttp.connect(proxy)) {
            assertThat(next.exchange(upgrade()).status()).isEqualTo(504);
        }
        assertThat(silent.connections).hasValue(3);
    }

    @Test
    void givesTheSlotsBackWhenTheProxyStopsMidHandshake() throws Exception {
        RawBackend silent = silentBackend();
        startProxy(LONG_CONNECT_TIMEOUT, builder -> builder.maxPendingBackendHandshakes(2)
                .route("/ws/", silent.backend()));
        RawHttp first = pendingUpgrade(silent);
        pendingUpgrade(silent);
        assertThat(status(0).pendingHandshakes()).isEqualTo(2);

        proxy.stop(Duration.ofSeconds(5));

        assertThat(status(0).pendingHandshakes()).isZero();
        assertThat(first.readResponse().status()).isEqualTo(503);
        assertThat(silent.nextEnd(5)).isIn("eof", "reset");
        assertThat(silent.nextEnd(5)).isIn("eof", "reset");
    }
}
