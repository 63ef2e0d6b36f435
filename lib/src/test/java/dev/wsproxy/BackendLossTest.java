package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import dev.wsproxy.internal.WebSocketProxyHandler;

/**
 * A backend that dies under load (matrix row M5): 200 live sessions spread over two backends, then one backend's
 * Jetty server is stopped. With Jetty's default stop timeout of 0 it closes its listening socket and every connection
 * without a close frame, as the kernel does for a process that dies: a hard loss of 100 sessions at once. Every client
 * of the lost backend gets {@code 1014 "backend connection lost"} within 5 seconds (the idle and close timeouts are 10
 * minutes, so the proxy cannot have waited for them), the clients of the other backend keep relaying, the backends'
 * active-session counts are exactly the live sessions again, and new sessions go to the live backend: the first pick
 * of the dead one is refused, counted once for passive health (the lost sessions are not) and failed over, and the
 * dead backend is then skipped. Run with the two selectors that read the counts (round robin does not,
 * least-connections does); the proxy, both backends and the clients end with the leak check.
 */
class BackendLossTest {

    private static final int SESSIONS = 200;
    private static final Duration LONG = Duration.ofMinutes(10);
    /** How long the clients of the lost backend may take to get their close: seconds, not the 10 minute timeouts. */
    private static final Duration LOSS_NOTICE = Duration.ofSeconds(5);

    private final BlockingQueue<String> connectFailures = new LinkedBlockingQueue<>();
    private TestBackend dying;
    private TestBackend live;
    private WebSocketProxy proxy;
    private Clients clients;

    @BeforeEach
    void start() throws Exception {
        dying = new TestBackend("dying");
        live = new TestBackend("live");
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, clients, dying, live);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"roundRobin", "leastConnections"})
    void closesEveryClientOfALostBackendWith1014AndKeepsTheOthers(String selector) throws Exception {
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", dying.backend(), live.backend())
                .backendSelector(selector.equals("roundRobin")
                        ? BackendSelector.roundRobin() : BackendSelector.leastConnections())
                .timeoutPolicy(TimeoutPolicy.custom().idle(LONG).close(LONG).build())
                .passiveHealth(1, LONG)
                .listener(new ProxyListener() {
                    @Override
                    public void onBackendConnectFailed(HandshakeRequest request, Backend backend, Throwable cause) {
                        connectFailures.add(backend.uri().toString());
                    }
                })
                .build();
        proxy.start();

        List<WsRecorder> ofDying = new ArrayList<>();
        List<WsRecorder> ofLive = new ArrayList<>();
        for (int i = 0; i < SESSIONS; i++) {
            WsRecorder client = clients.connect(Clients.ws(proxy, "/s" + i));
            client.sendText("whoami");
            (client.nextText().equals("dying") ? ofDying : ofLive).add(client);
        }
        assertThat(ofDying).as("sessions on the backend that dies").hasSize(SESSIONS / 2);
        assertThat(activeSessions()).containsExactly(SESSIONS / 2, SESSIONS / 2);

        String dyingUri = dying.uri().toString();
        dying.stopServer();
        await().atMost(LOSS_NOTICE).pollInterval(Duration.ofMillis(20))
                .until(() -> ofDying.stream().allMatch(client -> !client.session.isOpen()));
        for (WsRecorder client : ofDying) {
            assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1014, "backend connection lost"));
        }

        for (int i = 0; i < ofLive.size(); i++) {
            WsRecorder client = ofLive.get(i);
            client.sendText("still here " + i);
            assertThat(client.nextText()).isEqualTo("still here " + i);
            assertThat(client.events).as("nothing else reached a client of the live backend").isEmpty();
        }
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
            assertThat(activeSessions()).as("active sessions: the dead backend's lost ones given back")
                    .containsExactly(0, SESSIONS / 2);
            assertThat(((WebSocketProxyHandler) proxy.handler()).held())
                    .isEqualTo(new WebSocketProxyHandler.Held(SESSIONS / 2, 0, SESSIONS / 2, 0));
        });
        assertThat(proxy.backendStatus("/").get(0).recentFailures()).as("lost sessions are not connection failures")
                .isZero();
        assertThat(connectFailures).isEmpty();

        // New sessions: the dead backend's first pick is refused and fails over; then it is down and skipped.
        for (int i = 0; i < 4; i++) {
            WsRecorder client = clients.connect(Clients.ws(proxy, "/new" + i));
            client.sendText("whoami");
            assertThat(client.nextText()).as("new session %d", i).isEqualTo("live");
            ofLive.add(client);
        }
        assertThat(connectFailures).containsExactly(dyingUri);
        BackendStatus dead = proxy.backendStatus("/").get(0);
        assertThat(dead.state()).isEqualTo(BackendStatus.State.DOWN);
        assertThat(dead.recentFailures()).isEqualTo(1);
        assertThat(activeSessions()).containsExactly(0, SESSIONS / 2 + 4);

        for (WsRecorder client : ofLive) {
            client.session.close();
        }
        for (WsRecorder client : ofLive) {
            assertThat(client.nextClose().code()).isEqualTo(1000);
        }
    }

    private List<Integer> activeSessions() {
        return proxy.backendStatus("/").stream().map(BackendStatus::activeSessions).toList();
    }
}
