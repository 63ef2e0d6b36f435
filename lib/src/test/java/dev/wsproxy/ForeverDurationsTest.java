package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.tuple;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;

import org.eclipse.jetty.websocket.api.Callback;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Durations a user means as "forever", wherever the API takes one: a thousand years, and {@code ChronoUnit.FOREVER}
 * (too long for nanoseconds and for milliseconds). The proxy reads durations in nanoseconds and Jetty in
 * milliseconds; each is capped at 100 years instead, and the proxy relays and stops as usual. A thousand years of idle
 * timeout, and pings hourly under an idle timeout of forever, worked before the cap and are kept as cases.
 */
class ForeverDurationsTest {

    private static final Duration FOREVER = ChronoUnit.FOREVER.getDuration();

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

    /** A user's own policy that means every timeout as "never" but pings hourly. */
    record NeverPolicy() implements TimeoutPolicy {
        @Override
        public Duration connectTimeout() {
            return FOREVER;
        }

        @Override
        public Duration idleTimeout() {
            return FOREVER;
        }

        @Override
        public Duration closeTimeout() {
            return FOREVER;
        }

        @Override
        public Duration maxLifetime() {
            return FOREVER;
        }

        @Override
        public Duration pingInterval() {
            return Duration.ofHours(1);
        }
    }

    static Stream<Arguments> settings() {
        return Stream.of(
                settings("idle a thousand years", b -> b.timeoutPolicy(TimeoutPolicy.idle(Duration.ofDays(365_000)))),
                settings("idle forever", b -> b.timeoutPolicy(TimeoutPolicy.idle(FOREVER))),
                settings("no idle timeout, pings forever", b -> b.timeoutPolicy(
                        TimeoutPolicy.custom().idle(Duration.ZERO).ping(FOREVER).build())),
                settings("idle forever, pings hourly", b -> b.timeoutPolicy(
                        TimeoutPolicy.custom().idle(FOREVER).ping(Duration.ofHours(1)).build())),
                settings("connect forever", b -> b.timeoutPolicy(TimeoutPolicy.custom().connect(FOREVER).build())),
                settings("close forever", b -> b.timeoutPolicy(TimeoutPolicy.custom().close(FOREVER).build())),
                settings("lifetime forever", b -> b.timeoutPolicy(
                        TimeoutPolicy.custom().maxLifetime(FOREVER).build())),
                settings("a user's policy of forevers", b -> b.timeoutPolicy(new NeverPolicy())),
                settings("failover forever", b -> b.failover(2, FOREVER)),
                settings("connect forever, behind an authenticator", b -> b.authenticator(
                        request -> CompletableFuture.completedFuture(AuthDecision.allow()))
                        .timeoutPolicy(TimeoutPolicy.custom().connect(FOREVER).build())),
                settings("handshake timeout forever", b -> b.handshakeTimeout(FOREVER)),
                settings("drain timeout forever", b -> b.drainTimeout(FOREVER)));
    }

    private static Arguments settings(String name, UnaryOperator<ProxyBuilder> settings) {
        return Arguments.of(name, settings);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("settings")
    void relaysAndClosesWithADurationTooLongToCount(String name, UnaryOperator<ProxyBuilder> settings)
            throws Exception {
        proxy = settings.apply(ProxyBuilder.create().listen("127.0.0.1", 0).route("/ws/", backend.backend())).build();
        proxy.start();
        assertEchoesAndCloses();
    }

    @Test
    void takesABackendThatRefusesDownForeverAndRelaysThroughTheOther() throws Exception {
        int closedPort = Clients.closedPort();
        Backend refusing = Backend.of("ws://127.0.0.1:" + closedPort);
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/ws/", refusing, backend.backend())
                .failover(2, FOREVER)
                .passiveHealth(1, FOREVER)
                .build();
        proxy.start();
        // Round robin: the first or the second session tries the refusing backend first, marks it down for the fail
        // timeout, and fails over to the live one.
        assertEchoesAndCloses();
        assertEchoesAndCloses();
        assertThat(proxy.backendStatus("/ws/"))
                .extracting(status -> status.backend().uri().getPort(), BackendStatus::state)
                .containsExactlyInAnyOrder(tuple(closedPort, BackendStatus.State.DOWN),
                        tuple(backend.backend().uri().getPort(), BackendStatus.State.UP));
    }

    @Test
    void relaysWithHealthChecksAndDnsRefreshesForever() throws Exception {
        String localhost = "ws://localhost:" + backend.backend().uri().getPort();
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/ws/", r -> r.backendsFromDns(localhost, FOREVER)
                        .healthCheck(HealthCheck.webSocket("/health").interval(FOREVER).timeout(FOREVER)))
                .build();
        proxy.start();
        assertEchoesAndCloses();
    }

    @Test
    @Timeout(30) // stop(FOREVER) would wait for a leaked session forever: fail instead
    void drainsABackendAndStopsOverForever() throws Exception {
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/ws/", backend.backend()).build();
        proxy.start();
        List<WsRecorder> sessions = List.of(clients.connect(Clients.ws(proxy, "/ws/forever")),
                clients.connect(Clients.ws(proxy, "/ws/forever")));
        // The sessions of a drained backend close one by one over the window: the first at once, the second a
        // window's half later (50 years, once capped).
        proxy.drain(backend.backend(), FOREVER);
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(1001, "backend draining"));
        List<Object> answers = new ArrayList<>();
        for (WsRecorder session : sessions) {
            session.sendText("still here");
            answers.add(session.next());
        }
        assertThat(answers).containsExactlyInAnyOrder(new WsRecorder.Text("still here"),
                new WsRecorder.Closed(1001, "backend draining"));
        // Stopping closes the other and waits for its close handshake, which the peers answer at once.
        proxy.stop(FOREVER);
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(1001, "proxy shutting down"));
    }

    private void assertEchoesAndCloses() throws Exception {
        WsRecorder client = clients.connect(Clients.ws(proxy, "/ws/forever"));
        client.sendText("hello");
        assertThat(client.nextText()).isEqualTo("hello");
        client.session.close(1000, "bye", Callback.NOOP);
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1000, "bye"));
        // The backend's first close may be a health probe's.
        await().atMost(Duration.ofSeconds(10))
                .untilAsserted(() -> assertThat(backend.closes).contains(new TestBackend.Closed(1000, "bye")));
    }
}
