package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Active health checks take backends out and back in; DNS keeps a route's backends equal to a name's addresses. */
class HealthAndDnsTest {

    private record Change(String backend, BackendStatus.State from, BackendStatus.State to) {
    }

    private final BlockingQueue<Change> changes = new LinkedBlockingQueue<>();
    private TestBackend a;
    private TestBackend b;
    private WebSocketProxy proxy;
    private Clients clients;

    @BeforeEach
    void start() throws Exception {
        a = new TestBackend("a");
        b = new TestBackend("b");
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, clients, a, b);
    }

    private void start(ProxyBuilder builder) throws Exception {
        proxy = builder.listen("127.0.0.1", 0).listener(new ProxyListener() {
            @Override
            public void onBackendStateChanged(String route, BackendStatus backend, BackendStatus.State previous) {
                changes.add(new Change(backend.backend().uri().toString(), previous, backend.state()));
            }
        }).build();
        proxy.start();
    }

    private Change nextChange() throws InterruptedException {
        Change change = changes.poll(10, TimeUnit.SECONDS);
        assertThat(change).as("a backend state change").isNotNull();
        return change;
    }

    private String whoServes(List<WsRecorder> open) throws Exception {
        WsRecorder client = clients.connect(Clients.ws(proxy, "/ws/x"));
        client.sendText("whoami");
        open.add(client);
        return client.nextText();
    }

    private static void closeAll(List<WsRecorder> open) throws Exception {
        for (WsRecorder client : open) {
            client.session.close();
            client.nextClose();
        }
    }

    @Test
    void webSocketHealthCheckTakesADeadBackendOutAndBringsItBack() throws Exception {
        start(ProxyBuilder.create().route("/ws/", a.backend(), b.backend())
                .passiveHealth(0, Duration.ofSeconds(1))
                .healthCheck(HealthCheck.webSocket("/health").interval(Duration.ofMillis(100)).thresholds(2, 2)));
        int port = b.port();
        String bUri = b.uri().toString();
        b.stopServer();
        assertThat(nextChange()).isEqualTo(new Change(bUri, BackendStatus.State.UP, BackendStatus.State.DOWN));
        List<WsRecorder> open = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            assertThat(whoServes(open)).isEqualTo("a");
        }
        b.restartServer(port);
        assertThat(nextChange()).isEqualTo(new Change(bUri, BackendStatus.State.DOWN, BackendStatus.State.UP));
        List<String> served = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            served.add(whoServes(open));
        }
        assertThat(served).contains("a", "b");
        assertThat(b.upgrades.stream().filter(u -> u.pathQuery().equals("/health")).count())
                .as("the probes are WebSocket handshakes on the health path").isPositive();
        closeAll(open);
    }

    @Test
    void httpHealthCheckMarksABackendDownWhenItStopsAnswering() throws Exception {
        start(ProxyBuilder.create().route("/ws/", a.backend(), b.backend())
                .healthCheck(HealthCheck.http("/status").interval(Duration.ofMillis(100)).thresholds(1, 1)));
        await().atMost(Duration.ofSeconds(5)).until(() -> a.httpConnections.get() > 0);
        assertThat(proxy.backendStatus("/ws/")).extracting(BackendStatus::state)
                .containsExactly(BackendStatus.State.UP, BackendStatus.State.UP);
        a.stopServer();
        assertThat(nextChange().to()).isEqualTo(BackendStatus.State.DOWN);
        assertThat(proxy.backendStatus("/ws/").get(0).state()).isEqualTo(BackendStatus.State.DOWN);
    }

    @Test
    void httpHealthCheckTakesDownABackendThatStopsAcceptingThoughAnEarlierProbesConnectionStillAnswers()
            throws Exception {
        // Each probe is on a new connection, as a handshake is: the probes reused the backend client's kept-alive
        // connection, which went on answering 200 while the backend took no new connection, so the backend stayed UP
        // and every handshake sent to it waited for its connect timeout.
        start(ProxyBuilder.create().route("/ws/", a.backend(), b.backend())
                .healthCheck(HealthCheck.http("/status").interval(Duration.ofMillis(100))
                        .timeout(Duration.ofMillis(500)).thresholds(1, 1)));
        await().atMost(Duration.ofSeconds(5)).until(() -> a.httpConnections.get() > 0);

        a.stopAccepting();

        assertThat(nextChange()).isEqualTo(new Change(a.uri().toString(), BackendStatus.State.UP,
                BackendStatus.State.DOWN));
        assertThat(proxy.backendStatus("/ws/")).extracting(BackendStatus::state)
                .containsExactly(BackendStatus.State.DOWN, BackendStatus.State.UP);
    }

    @Test
    void takesASubMillisecondTimeoutAsOneMillisecondNotAsNone() throws Exception {
        // Jetty reads a timeout of 0 ms as none: a backend that accepts and never answers stayed UP forever.
        RawBackend silent = RawBackend.holding(RawBackend.silent());
        try {
            start(ProxyBuilder.create().route("/ws/", silent.backend())
                    .healthCheck(HealthCheck.http("/status").interval(Duration.ofMillis(100))
                            .timeout(Duration.ofNanos(500)).thresholds(1, 1)));
            assertThat(nextChange()).as("the silent backend, taken out by its probe's timeout")
                    .isEqualTo(new Change(silent.backend().uri().toString(), BackendStatus.State.UP,
                            BackendStatus.State.DOWN));
        } finally {
            Clients.tearDown(proxy, null, silent);
            proxy = null;
        }
    }

    @Test
    void neverStacksProbesOnABackendSlowerThanTheInterval() throws Exception {
        // A new probe each round whatever the last one's fate kept timeout / interval probes in flight to a stalled
        // backend (here 20), and their late failures reset the good streak of a backend that had recovered.
        RawBackend stalled = RawBackend.holding(RawBackend.silent());
        try {
            start(ProxyBuilder.create().route("/ws/", stalled.backend())
                    .healthCheck(HealthCheck.webSocket("/health").interval(Duration.ofMillis(50))
                            .timeout(Duration.ofSeconds(1)).thresholds(1, 1)));
            assertThat(nextChange()).as("the stalled backend, taken out by its first probe's timeout")
                    .isEqualTo(new Change(stalled.backend().uri().toString(), BackendStatus.State.UP,
                            BackendStatus.State.DOWN));
            assertThat(stalled.connections.get()).as("probes opened until the first one timed out")
                    .isLessThanOrEqualTo(2);
        } finally {
            Clients.tearDown(proxy, null, stalled);
            proxy = null;
        }
    }

    @Test
    void dropsAProbeConnectionWhoseCloseTheBackendNeverAnswers() throws Exception {
        // A WebSocket probe was done at its 101; its connection then waited for the answer to its close until Jetty's
        // idle timeout (30 s), while a new probe opened each interval: a backend that ignores close frames held
        // about 30 s / interval probe connections.
        RawBackend deaf = RawBackend.upgradingThen((socket, out) -> {
            java.io.InputStream in = socket.getInputStream();
            while (in.read() != -1) {
                // The close frame and anything after it go unanswered until the proxy drops the connection.
            }
        });
        try {
            start(ProxyBuilder.create().route("/ws/", deaf.backend())
                    .healthCheck(HealthCheck.webSocket("/health").interval(Duration.ofMillis(50))
                            .timeout(Duration.ofMillis(200))));
            await().atMost(Duration.ofSeconds(10)).until(() -> deaf.connections.get() >= 5);

            assertThat(deaf.mostOpen.get()).as("probe connections open at once").isLessThanOrEqualTo(2);
            assertThat(deaf.ends).as("connections the proxy dropped").isNotEmpty().allMatch("eof"::equals);
            assertThat(proxy.backendStatus("/ws/").get(0).state()).as("a 101 is a good probe")
                    .isEqualTo(BackendStatus.State.UP);
            assertThat(changes).isEmpty();
        } finally {
            Clients.tearDown(proxy, null, deaf);
            proxy = null;
        }
    }

    @Test
    void reportsNoChangeWhenPassiveHealthFailsABackendAHealthCheckTookDown() throws Exception {
        // A selector may pick a backend that is down (from backends()); its failed connect then counts for passive
        // health, but the backend was DOWN already: listeners heard UP -> DOWN a second time.
        Backend dead = Backend.of("ws://127.0.0.1:" + Clients.closedPort());
        BackendSelector deadFirst = new BackendSelector() {
            private int calls;

            @Override
            public synchronized Backend select(SelectionContext context) {
                return calls++ == 0 ? dead : a.backend();
            }
        };
        start(ProxyBuilder.create().route("/ws/", r -> r.backends(dead, a.backend()).backendSelector(deadFirst))
                .healthCheck(HealthCheck.webSocket("/health").interval(Duration.ofMillis(100)).thresholds(1, 1)));
        assertThat(nextChange()).isEqualTo(new Change(dead.uri().toString(), BackendStatus.State.UP,
                BackendStatus.State.DOWN));

        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).as("tried the dead backend first, failed over").isEqualTo("a");

        assertThat(proxy.backendStatus("/ws/").get(0).recentFailures()).as("the failure counted").isOne();
        // Listeners are called before failover moves on, so before the client got its 101.
        assertThat(changes).as("changes reported after the health check's").isEmpty();
        closeAll(open);
    }

    @Test
    void followsTheAddressesOfADnsName() throws Exception {
        start(ProxyBuilder.create().route("/ws/", r -> r.backendsFromDns("ws://localhost:" + a.port(),
                Duration.ofMillis(200))));
        await().atMost(Duration.ofSeconds(10)).until(() -> !proxy.backendStatus("/ws/").isEmpty());
        assertThat(proxy.backendStatus("/ws/")).extracting(status -> status.backend().uri().toString())
                .contains("ws://127.0.0.1:" + a.port());
        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).isEqualTo("a");
        closeAll(open);

        // A list of the operator's would last until the next answer, without a word: refused, the list unchanged.
        assertThatThrownBy(() -> proxy.updateBackends("/ws/", List.of(Backend.of("ws://127.0.0.1:9"))))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("backendsFromDns");
        assertThat(proxy.backendStatus("/ws/")).extracting(status -> status.backend().uri().toString())
                .contains("ws://127.0.0.1:" + a.port());
    }

    @Test
    void aProxyDerivedWithToBuilderFollowsTheDnsNameToo() throws Exception {
        // The derived route had lost its DNS name, keeping the empty list it starts with: 503 forever.
        WebSocketProxy original = ProxyBuilder.create().route("/ws/", r -> r.backendsFromDns(
                "ws://localhost:" + a.port(), Duration.ofMillis(200))).build();
        start(original.toBuilder());
        await().atMost(Duration.ofSeconds(10)).until(() -> !proxy.backendStatus("/ws/").isEmpty());
        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).isEqualTo("a");
        closeAll(open);
    }
}
