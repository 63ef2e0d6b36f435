package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Spreading, failover, passive health, backups, live membership and drain, on real backends tagged with ids. */
class BalancingTest {

    private final List<AutoCloseable> resources = new ArrayList<>();
    private final BlockingQueue<String> failures = new LinkedBlockingQueue<>();
    private TestBackend a;
    private TestBackend b;
    private TestBackend c;
    private WebSocketProxy proxy;
    private Clients clients;

    @BeforeEach
    void start() throws Exception {
        a = new TestBackend("a");
        b = new TestBackend("b");
        c = new TestBackend("c");
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, clients, a, b, c);
        for (AutoCloseable resource : resources) {
            resource.close();
        }
    }

    private void start(ProxyBuilder builder) throws Exception {
        proxy = builder.listen("127.0.0.1", 0)
                .listener(new ProxyListener() {
                    @Override
                    public void onBackendConnectFailed(HandshakeRequest request, Backend backend, Throwable cause) {
                        failures.add(backend.uri().toString());
                    }
                })
                .build();
        proxy.start();
    }

    /** Opens a session, asks which backend serves it, and keeps it open. */
    private String whoServes(List<WsRecorder> open) throws Exception {
        WsRecorder client = clients.connect(Clients.ws(proxy, "/ws/x"));
        client.sendText("whoami");
        open.add(client);
        return client.nextText();
    }

    private static Backend closedPort() throws Exception {
        return Backend.of("ws://127.0.0.1:" + Clients.closedPort());
    }

    /** Closes {@code open}, then waits until the route's backends count no active session (closes reported). */
    private void closeAllAndAwaitNoActiveSessions(List<WsRecorder> open) throws Exception {
        closeAll(open);
        org.awaitility.Awaitility.await().until(() -> proxy.backendStatus("/ws/").stream()
                .allMatch(status -> status.activeSessions() == 0));
    }

    /** A route of a and b whose selector builds a itself (its own Backend, not the list's) for every session. */
    private void startWithASelectorThatBuildsA() throws Exception {
        start(ProxyBuilder.create().route("/ws/", r -> r.backends(a.backend(), b.backend())
                .backendSelector(context -> Backend.of(a.backend().uri().toString()))));
    }

    private void closeAll(List<WsRecorder> open) throws Exception {
        for (WsRecorder client : open) {
            client.session.close();
        }
        for (WsRecorder client : open) {
            client.nextClose();
        }
        open.clear();
    }

    @Test
    void spreadsSessionsOverThreeBackendsInTurn() throws Exception {
        start(ProxyBuilder.create().route("/ws/", a.backend(), b.backend(), c.backend()));
        List<WsRecorder> open = new ArrayList<>();
        List<String> order = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            order.add(whoServes(open));
        }
        assertThat(order).containsExactly("a", "b", "c", "a", "b", "c");
        assertThat(proxy.backendStatus("/ws/")).extracting(BackendStatus::activeSessions).containsExactly(2, 2, 2);
        closeAll(open);
        org.awaitility.Awaitility.await().untilAsserted(() -> assertThat(proxy.backendStatus("/ws/"))
                .extracting(BackendStatus::activeSessions).containsExactly(0, 0, 0));
        assertThat(proxy.backendStatus("/ws/")).extracting(BackendStatus::totalSessions).containsExactly(2L, 2L, 2L);
    }

    @Test
    void failsOverToTheNextBackendWhenOneRefusesConnections() throws Exception {
        Backend down = closedPort();
        start(ProxyBuilder.create().route("/ws/", down, a.backend()).passiveHealth(0, Duration.ofSeconds(10)));
        List<WsRecorder> open = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            assertThat(whoServes(open)).as("no client sees a 502 while another backend is up").isEqualTo("a");
        }
        assertThat(failures).contains(down.uri().toString());
        closeAll(open);
    }

    @Test
    void skipsAFailedBackendForTheFailTimeoutThenTriesItAgain() throws Exception {
        Backend down = closedPort();
        start(ProxyBuilder.create().route("/ws/", down, a.backend()).passiveHealth(1, Duration.ofMillis(700)));
        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).isEqualTo("a"); // tried `down` first, failed over
        assertThat(failures.poll(5, TimeUnit.SECONDS)).isEqualTo(down.uri().toString());
        assertThat(proxy.backendStatus("/ws/").get(0).state()).isEqualTo(BackendStatus.State.DOWN);
        for (int i = 0; i < 3; i++) {
            assertThat(whoServes(open)).isEqualTo("a");
        }
        assertThat(failures).as("a down backend is not tried").isEmpty();
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(5)).until(
                () -> proxy.backendStatus("/ws/").get(0).state() == BackendStatus.State.UP);
        closeAll(open);
    }

    @Test
    void doesNotBlameABackendWhoseConnectTimeoutTheFailoverTimeCutShort() throws Exception {
        // A takes the whole connect timeout (1 s) and is rightly down; B then gets only what is left of the failover
        // time (about 100 ms). Its timeout says nothing about B, which would have answered within its own 1 s.
        RawBackend silent = RawBackend.answering(RawBackend.silent());
        resources.add(silent);
        RawBackend late = RawBackend.holding(RawBackend.switching(null));
        resources.add(late);
        start(ProxyBuilder.create().route("/ws/", silent.backend(), late.backend())
                .timeoutPolicy(TimeoutPolicy.custom().connect(Duration.ofSeconds(1)).build())
                .failover(2, Duration.ofMillis(1100)));
        try (RawHttpExchange exchange = RawHttpExchange.upgrade(proxy.uri().getPort(), "/ws/x")) {
            assertThat(exchange.statusLine()).startsWith("HTTP/1.1 504");
        }
        assertThat(late.nextRequest()).as("B was tried, after A").isNotNull();
        late.release();

        List<BackendStatus> status = proxy.backendStatus("/ws/");
        assertThat(status.get(0).state()).as("A, silent for its whole connect timeout")
                .isEqualTo(BackendStatus.State.DOWN);
        assertThat(status.get(1).state()).as("B, cut short by the failover time").isEqualTo(BackendStatus.State.UP);
        assertThat(status.get(1).recentFailures()).isZero();
    }

    @Test
    void sendsOneHandshakeAtATimeToABackendBackFromPassiveHealthsDownAndTakesItDownAgainAtItsFailure()
            throws Exception {
        // When the window passed, the backend was fully up again: every handshake until maxFails new failures were
        // counted went to it, so for one that swallows connection attempts, all those of a whole connect timeout, each
        // client waiting for that timeout before failing over, after every window. nginx lets one request test it.
        Duration connectTimeout = Duration.ofSeconds(2);
        RawBackend silent = silentBackendOnTrial(connectTimeout);
        BackendStatus silentStatus = proxy.backendStatus("/ws/").get(0);
        List<WsRecorder> open = java.util.Collections.synchronizedList(new ArrayList<>());

        int handshakes = 4;
        List<java.util.concurrent.Future<String>> served = concurrently(handshakes, open);

        // All but the trial's reach the healthy backend while the trial still waits at the silent one.
        org.awaitility.Awaitility.await().atMost(connectTimeout.minusMillis(500))
                .until(() -> served.stream().filter(java.util.concurrent.Future::isDone).count() == handshakes - 1);
        assertThat(silent.connections).as("one handshake tests the silent backend").hasValue(3);
        assertThat(silentStatus.pendingHandshakes()).as("the trial, still waiting").isOne();
        assertThat(failures).as("the first two failures only").hasSize(2);
        for (java.util.concurrent.Future<String> handshake : served) {
            assertThat(handshake.get(10, TimeUnit.SECONDS)).isEqualTo("a");
        }
        assertThat(failures).as("the trial's failure too").hasSize(3);
        assertThat(silentStatus.state()).as("down again for a window at the trial's one failure, maxFails 2")
                .isEqualTo(BackendStatus.State.DOWN);
        assertThat(silentStatus.recentFailures()).isOne();
        assertThat(whoServes(open)).isEqualTo("a");
        assertThat(silent.connections).as("not tried while down").hasValue(3);
        closeAll(open);
    }

    @Test
    void keepsABackendOnTrialWhenAPlainRequestsHeadIsWrittenToIt() throws Exception {
        // A frozen process whose kernel still takes connections takes a plain request's head. Counted as a success,
        // that ended the trial with the backend's failures forgotten, and the handshakes after it went to it until
        // maxFails new failures were counted, each waiting for the connect timeout. Only a response is a success.
        RawBackend silent = silentBackendOnTrial(Duration.ofSeconds(2));
        BackendStatus silentStatus = proxy.backendStatus("/ws/").get(0);
        List<WsRecorder> open = java.util.Collections.synchronizedList(new ArrayList<>());

        // On trial: a long poll's head reaches the silent backend, which never answers it.
        RawHttp poll = RawHttp.connect(proxy);
        resources.add(poll);
        poll.send(RawHttp.Request.plain("GET", "/ws/poll", RawHttp.host(proxy)));
        org.awaitility.Awaitility.await("the poll's head, at the silent backend").atMost(Duration.ofSeconds(10))
                .until(() -> silent.requests.stream().anyMatch(request -> request.head().startsWith("GET /ws/poll ")));

        // The trial goes on: the next handshake tests the backend, fails over at its connect timeout, and its failure
        // takes the backend down at once (it took one of maxFails 2 before).
        assertThat(whoServes(open)).isEqualTo("a");
        assertThat(silent.connections).as("the poll's and the handshake's").hasValue(4);
        assertThat(silentStatus.state()).as("down again at the trial's one failure").isEqualTo(BackendStatus.State.DOWN);
        closeAll(open);
    }

    /**
     * Starts the proxy with a route of a silent backend (it takes connections and never answers) before {@link #a},
     * picked first whenever it is a candidate, with {@code connectTimeout} and passive health of 2 failures in 2 s;
     * takes it down with two handshakes (failed over to {@code a}) and returns it once its window has passed: on trial.
     */
    private RawBackend silentBackendOnTrial(Duration connectTimeout) throws Exception {
        RawBackend silent = RawBackend.answering(RawBackend.silent());
        resources.add(silent);
        start(ProxyBuilder.create().route("/ws/", r -> r.backends(silent.backend(), a.backend())
                .backendSelector(context -> context.candidates().get(0).backend())
                .timeoutPolicy(TimeoutPolicy.custom().connect(connectTimeout).build())
                .passiveHealth(2, Duration.ofSeconds(2))));
        List<WsRecorder> open = java.util.Collections.synchronizedList(new ArrayList<>());
        for (java.util.concurrent.Future<String> handshake : concurrently(2, open)) {
            assertThat(handshake.get(10, TimeUnit.SECONDS)).isEqualTo("a"); // the silent one first, failed over
        }
        closeAll(open);
        BackendStatus silentStatus = proxy.backendStatus("/ws/").get(0);
        assertThat(silentStatus.state()).as("2 failures of 2").isEqualTo(BackendStatus.State.DOWN);
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(10))
                .until(() -> silentStatus.state() == BackendStatus.State.UP);
        assertThat(silent.connections).hasValue(2);
        return silent;
    }

    /** Starts {@code count} sessions at once, each asking which backend serves it ({@link #whoServes}). */
    private List<java.util.concurrent.Future<String>> concurrently(int count, List<WsRecorder> open) {
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(count);
        resources.add(pool::shutdownNow);
        java.util.concurrent.CountDownLatch go = new java.util.concurrent.CountDownLatch(count);
        List<java.util.concurrent.Future<String>> served = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            served.add(pool.submit(() -> {
                go.countDown();
                go.await();
                return whoServes(open);
            }));
        }
        return served;
    }

    @Test
    void neverKeepsTheOnlyBackendOfARouteDownForEarlierFailures() throws Exception {
        // Passive health never takes down the one backend of a route; a route shrunk to one must not keep it down
        // either, or it answers 503 until the fail timeout although its backend is back.
        start(ProxyBuilder.create().route("/ws/", a.backend(), b.backend()).passiveHealth(1, Duration.ofMinutes(5)));
        int port = a.port();
        String aUri = a.uri().toString();
        a.stopServer();
        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).isEqualTo("b"); // tried a first, failed over
        assertThat(failures.poll(5, TimeUnit.SECONDS)).isEqualTo(aUri);
        assertThat(proxy.backendStatus("/ws/").get(0).state()).isEqualTo(BackendStatus.State.DOWN);
        a.restartServer(port);

        proxy.updateBackends("/ws/", List.of(a.backend()));

        assertThat(proxy.backendStatus("/ws/").get(0).state()).isEqualTo(BackendStatus.State.UP);
        assertThat(whoServes(open)).isEqualTo("a");
        closeAll(open);
    }

    @Test
    void reportsRecentFailuresWithinThePassiveHealthWindowOnly() throws Exception {
        // The count was reset only by the next failure or success: a backend that failed twice and then got no
        // traffic showed 2 recent failures for as long as nothing was tried.
        Backend down = closedPort();
        start(ProxyBuilder.create().route("/ws/", r -> r.backends(down, a.backend())
                .backendSelector(context -> context.candidates().get(0).backend())
                .passiveHealth(3, Duration.ofSeconds(2))));
        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).isEqualTo("a"); // tried `down` first, failed over
        assertThat(whoServes(open)).isEqualTo("a");
        BackendStatus status = proxy.backendStatus("/ws/").get(0);
        assertThat(status.recentFailures()).isEqualTo(2);
        assertThat(status.state()).as("2 of 3 failures").isEqualTo(BackendStatus.State.UP);

        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> status.recentFailures() == 0);
        assertThat(status.state()).isEqualTo(BackendStatus.State.UP);
        closeAll(open);
    }

    @Test
    void countsTheFailuresOfTheOnlyBackendWithoutTakingItDown() throws Exception {
        // Passive health counted nothing for the one backend of a route: refusing every connection, it showed UP
        // with no failure while every client got 502.
        Backend down = closedPort();
        start(ProxyBuilder.create().route("/ws/", down).passiveHealth(1, Duration.ofSeconds(2)));
        for (int i = 1; i <= 2; i++) {
            try (RawHttpExchange exchange = RawHttpExchange.upgrade(proxy.uri().getPort(), "/ws/x")) {
                assertThat(exchange.statusLine()).as("tried each time, never down: 502, not 503")
                        .startsWith("HTTP/1.1 502");
            }
            BackendStatus status = proxy.backendStatus("/ws/").get(0);
            assertThat(status.recentFailures()).isEqualTo(i);
            assertThat(status.state()).isEqualTo(BackendStatus.State.UP);
        }
        assertThat(failures).hasSize(2);

        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(10))
                .until(() -> proxy.backendStatus("/ws/").get(0).recentFailures() == 0);
    }

    @Test
    void givesABackendOutsideTheListNoPassiveHealth() throws Exception {
        // A backend the selector builds itself has no passive health (docs/load-balancing.md). Its failures took it
        // down all the same: reported UP -> DOWN (and "is down for PT5M" at WARN), while every handshake still went
        // to it and no DOWN -> UP ever followed.
        Backend outside = closedPort();
        List<String> changes = new java.util.concurrent.CopyOnWriteArrayList<>();
        start(ProxyBuilder.create()
                .listener(new ProxyListener() {
                    @Override
                    public void onBackendStateChanged(String route, BackendStatus backend,
                            BackendStatus.State previous) {
                        changes.add(backend.backend() + " " + previous + " -> " + backend.state());
                    }
                })
                .route("/ws/", r -> r.backends(a.backend(), b.backend()).backendSelector(context -> outside)
                        .passiveHealth(1, Duration.ofMinutes(5))));
        for (int i = 0; i < 2; i++) {
            try (RawHttpExchange exchange = RawHttpExchange.upgrade(proxy.uri().getPort(), "/ws/x")) {
                assertThat(exchange.statusLine()).as("tried each time").startsWith("HTTP/1.1 502");
            }
        }
        assertThat(failures).as("each connect failure is still reported")
                .containsExactly(outside.uri().toString(), outside.uri().toString());
        // Both reported before the 502 was written.
        assertThat(changes).as("state changes").isEmpty();
        assertThat(proxy.backendStatus("/ws/")).extracting(BackendStatus::recentFailures).containsExactly(0, 0);
    }

    @Test
    void usesBackupsOnlyWhileEveryPrimaryIsDown() throws Exception {
        start(ProxyBuilder.create().route("/ws/", a.backend(), b.backend().asBackup()));
        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).isEqualTo("a");
        assertThat(whoServes(open)).isEqualTo("a");
        closeAll(open);
        proxy.drain(a.backend(), Duration.ZERO);
        assertThat(whoServes(open)).as("the primary is draining: the backup takes over").isEqualTo("b");
        proxy.updateBackends("/ws/", List.of(a.backend(), b.backend().asBackup()));
        assertThat(whoServes(open)).as("the primary is back").isEqualTo("a");
        closeAll(open);
    }

    @Test
    void keepsTheCountsOfABackendRemovedAndAddedBackWhileItsSessionsStayOpen() throws Exception {
        // As a DNS answer that leaves an address out once: with a fresh state the backend would count none of its
        // open sessions, and least-connections would send it every new session.
        start(ProxyBuilder.create().route("/ws/", r -> r.backends(a.backend(), b.backend())
                .backendSelector(BackendSelector.leastConnections())));
        List<WsRecorder> open = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            whoServes(open);
        }
        proxy.updateBackends("/ws/", List.of(b.backend()));
        proxy.updateBackends("/ws/", List.of(a.backend(), b.backend()));

        assertThat(proxy.backendStatus("/ws/")).extracting(BackendStatus::activeSessions).containsExactly(2, 2);
        assertThat(proxy.backendStatus("/ws/").get(0).state()).isEqualTo(BackendStatus.State.UP);
        assertThat(List.of(whoServes(open), whoServes(open))).as("least connections, counts kept")
                .containsExactlyInAnyOrder("a", "b");
        closeAll(open);
    }

    @Test
    void keepsTheCountsOfABackendOutsideTheListThatUpdateBackendsAdds() throws Exception {
        // A backend a custom selector built itself, then added to the list: the list gave it a fresh state, which
        // counted none of the sessions open on it (backendStatus 0), and least-connections sent it the next ones.
        BackendSelector leastConnections = BackendSelector.leastConnections().forRoute("/ws/");
        java.util.concurrent.atomic.AtomicBoolean first = new java.util.concurrent.atomic.AtomicBoolean(true);
        start(ProxyBuilder.create().route("/ws/", r -> r.backends(a.backend(), b.backend())
                .backendSelector(context -> first.getAndSet(false) ? c.backend() : leastConnections.select(context))));
        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).as("built by the selector").isEqualTo("c");
        assertThat(List.of(whoServes(open), whoServes(open))).containsExactlyInAnyOrder("a", "b");

        proxy.updateBackends("/ws/", List.of(a.backend(), b.backend(), c.backend()));

        assertThat(proxy.backendStatus("/ws/")).extracting(BackendStatus::activeSessions).containsExactly(1, 1, 1);
        assertThat(List.of(whoServes(open), whoServes(open), whoServes(open))).as("least connections, counts kept")
                .containsExactlyInAnyOrder("a", "b", "c");
        closeAllAndAwaitNoActiveSessions(open);
    }

    @Test
    void countsTheSessionsACustomSelectorOpensOnARemovedBackendWithThoseItStillHas() throws Exception {
        // A backend removed with sessions open keeps its state for them; a selector that builds the backend itself
        // got a second, fresh state for it, outside the list. Listed again, the backend came back with the first
        // state only: backendStatus counted 1 of its 2 sessions, and least-connections favoured it.
        startWithASelectorThatBuildsA();
        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).isEqualTo("a");
        proxy.updateBackends("/ws/", List.of(b.backend()));
        assertThat(whoServes(open)).as("built by the selector, outside the list").isEqualTo("a");

        proxy.updateBackends("/ws/", List.of(a.backend(), b.backend()));

        assertThat(proxy.backendStatus("/ws/")).extracting(BackendStatus::activeSessions).containsExactly(2, 0);
        assertThat(proxy.backendStatus("/ws/").get(0).totalSessions()).isEqualTo(2);
        closeAllAndAwaitNoActiveSessions(open);
    }

    @Test
    void turnsAwayTheSessionsACustomSelectorOpensOnARemovedBackendItDrained() throws Exception {
        // The drain marked the removed backend's state, but a selector that builds the backend itself got a fresh
        // state of its own for it, which no drain marks: the drained backend went on taking its new sessions (101).
        startWithASelectorThatBuildsA();
        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).isEqualTo("a");
        assertThat(whoServes(open)).isEqualTo("a");
        proxy.updateBackends("/ws/", List.of(b.backend()));

        proxy.drain(a.backend(), Duration.ofMinutes(2)); // one session closed at once, the other after a minute
        org.awaitility.Awaitility.await().until(() -> open.stream().anyMatch(client -> !client.events.isEmpty()));
        open.removeIf(client -> !client.events.isEmpty());

        try (RawHttpExchange exchange = RawHttpExchange.upgrade(proxy.uri().getPort(), "/ws/x")) {
            assertThat(exchange.statusLine()).as("the selector's pick, drained").startsWith("HTTP/1.1 503");
        }
        assertThat(a.upgrades).as("handshakes that reached a").hasSize(2);
        closeAll(open);
    }

    @Test
    void answers503WithRetryAfterWhenNoBackendIsAvailable() throws Exception {
        start(ProxyBuilder.create().route("/ws/", a.backend(), b.backend()));
        proxy.drain(a.backend(), Duration.ZERO);
        proxy.drain(b.backend(), Duration.ZERO);
        try (RawHttpExchange exchange = RawHttpExchange.upgrade(proxy.uri().getPort(), "/ws/x")) {
            assertThat(exchange.statusLine()).startsWith("HTTP/1.1 503");
            assertThat(exchange.head()).containsIgnoringCase("Retry-After:");
        }
    }

    @Test
    void replacesTheBackendListWithoutTouchingOpenSessions() throws Exception {
        start(ProxyBuilder.create().route("/ws/", a.backend()));
        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).isEqualTo("a");
        proxy.updateBackends("/ws/", List.of(b.backend(), c.backend()));
        assertThat(whoServes(open)).isIn("b", "c");
        assertThat(whoServes(open)).isIn("b", "c");
        WsRecorder first = open.get(0);
        first.sendText("still here");
        assertThat(first.nextText()).as("the session on the removed backend is untouched").isEqualTo("still here");
        closeAll(open);
    }

    @Test
    void aProxyDerivedWithToBuilderHasTheBackendsUpdateBackendsLeft() throws Exception {
        // The proxy kept a copy of its builder from build(): the derived proxy went back to the built list, [a].
        start(ProxyBuilder.create().route("/ws/", a.backend()));
        proxy.updateBackends("/ws/", List.of(b.backend()));
        proxy.stop(Duration.ofSeconds(5));
        proxy = proxy.toBuilder().build();
        proxy.start();

        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).isEqualTo("b");
        assertThat(proxy.backendStatus("/ws/")).extracting(BackendStatus::backend).containsExactly(b.backend());
        assertThat(a.upgrades).as("upgrades that reached a").isEmpty();
        closeAll(open);
    }

    @Test
    void drainClosesABackendsSessionsWith1001AcrossTheWindow() throws Exception {
        start(ProxyBuilder.create().route("/ws/", a.backend(), b.backend()));
        List<WsRecorder> open = new ArrayList<>();
        Map<String, List<WsRecorder>> byBackend = new HashMap<>();
        for (int i = 0; i < 6; i++) {
            String id = whoServes(open);
            byBackend.computeIfAbsent(id, k -> new ArrayList<>()).add(open.get(open.size() - 1));
        }
        long start = System.nanoTime();
        proxy.drain(a.backend(), Duration.ofMillis(600));
        List<Long> closedAfterMillis = new ArrayList<>();
        for (WsRecorder client : byBackend.get("a")) {
            assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1001, "backend draining"));
            closedAfterMillis.add((System.nanoTime() - start) / 1_000_000);
        }
        assertThat(closedAfterMillis.get(closedAfterMillis.size() - 1))
                .as("the closes are spread over the window, not all at once").isGreaterThanOrEqualTo(350);
        for (WsRecorder client : byBackend.get("b")) {
            client.sendText("alive");
            assertThat(client.nextText()).isEqualTo("alive");
        }
        assertThat(proxy.backendStatus("/ws/").get(0).state()).isEqualTo(BackendStatus.State.DRAINING);
        assertThat(whoServes(open)).isEqualTo("b");
        open.removeAll(byBackend.get("a"));
        closeAll(open);
    }

    @Test
    void stopsClosingTheSessionsOfABackendWhoseDrainUpdateBackendsEnded() throws Exception {
        // updateBackends with the backend listed ends its drain, but the closes drain() had spread over its window
        // still ran: each session left went on being closed with 1001 "backend draining" until the window was over.
        start(ProxyBuilder.create().route("/ws/", a.backend(), b.backend()));
        List<WsRecorder> open = new ArrayList<>();
        Map<String, List<WsRecorder>> byBackend = new HashMap<>();
        for (int i = 0; i < 4; i++) {
            String id = whoServes(open);
            byBackend.computeIfAbsent(id, k -> new ArrayList<>()).add(open.get(open.size() - 1));
        }
        List<WsRecorder> onA = byBackend.get("a");
        List<WsRecorder> onB = byBackend.get("b");
        assertThat(onA).hasSize(2);
        Duration window = Duration.ofSeconds(2);

        proxy.drain(a.backend(), window); // one session closed at once, the other a second later
        org.awaitility.Awaitility.await().until(() -> onA.stream().anyMatch(client -> !client.events.isEmpty()));
        WsRecorder closed = onA.stream().filter(client -> !client.events.isEmpty()).findFirst().orElseThrow();
        WsRecorder left = onA.get(onA.get(0) == closed ? 1 : 0);
        assertThat(closed.nextClose()).isEqualTo(new WsRecorder.Closed(1001, "backend draining"));
        proxy.updateBackends("/ws/", List.of(a.backend(), b.backend()));
        assertThat(proxy.backendStatus("/ws/").get(0).state()).isEqualTo(BackendStatus.State.UP);

        // The same window on b, begun later on the same scheduler: once b's second session is closed, the time of
        // a's second close has passed.
        proxy.drain(b.backend(), window);
        for (WsRecorder client : onB) {
            assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1001, "backend draining"));
        }
        assertThat(left.events).as("the session left on a, whose drain was ended").isEmpty();
        left.sendText("alive");
        assertThat(left.nextText()).isEqualTo("alive");
        assertThat(whoServes(open)).as("b draining, a taking sessions again").isEqualTo("a");
        open.removeAll(onB);
        open.remove(closed);
        closeAll(open);
    }

    @ParameterizedTest(name = "updateBackends between the drains: {0}")
    @ValueSource(booleans = {false, true})
    void closesTheSessionsLeftOverTheLatestDrainsWindowWhenDrainedTwice(boolean updateBetween) throws Exception {
        // A second drain added its closes to the first's: without an updateBackends between, a longer second window
        // did not slow the closes down; with one (which ends a drain and drops the closes it still had to run), the
        // second drain brought the first's back (they checked only that the backend was draining). Either way the
        // session left was closed on the first drain's schedule, within a second, instead of the second drain's.
        start(ProxyBuilder.create().route("/ws/", a.backend(), b.backend()));
        List<WsRecorder> open = new ArrayList<>();
        Map<String, List<WsRecorder>> byBackend = new HashMap<>();
        for (int i = 0; i < 6; i++) {
            String id = whoServes(open);
            byBackend.computeIfAbsent(id, k -> new ArrayList<>()).add(open.get(open.size() - 1));
        }
        List<WsRecorder> onA = byBackend.get("a");
        List<WsRecorder> onB = byBackend.get("b");
        assertThat(onA).hasSize(3);
        Duration window = Duration.ofMillis(1500);

        proxy.drain(a.backend(), window); // one session closed at once, the others after 0.5 s and 1 s
        org.awaitility.Awaitility.await().until(() -> onA.stream().anyMatch(client -> !client.events.isEmpty()));
        if (updateBetween) {
            proxy.updateBackends("/ws/", List.of(a.backend(), b.backend()));
        }
        proxy.drain(a.backend(), Duration.ofMinutes(2)); // one of the two left closed at once, the other after 1 min
        org.awaitility.Awaitility.await().until(() -> onA.stream().filter(client -> !client.events.isEmpty())
                .count() >= 2);
        List<WsRecorder> left = onA.stream().filter(client -> client.events.isEmpty()).toList();
        assertThat(left).as("sessions left on a, the second drain's next close a minute away").hasSize(1);

        // The first window on b, begun later on the same scheduler: once b's last session is closed, the times of
        // the first drain's closes on a have passed.
        proxy.drain(b.backend(), window);
        for (WsRecorder client : onB) {
            assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1001, "backend draining"));
        }
        assertThat(left.get(0).events).as("the session left on a, on the first drain's schedule").isEmpty();
        left.get(0).sendText("alive");
        assertThat(left.get(0).nextText()).isEqualTo("alive");

        // And a shorter window speeds the closes up: the session left goes now, not a minute from the second drain.
        proxy.drain(a.backend(), Duration.ZERO);
        for (WsRecorder client : onA) {
            assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1001, "backend draining"));
        }
        open.clear();
    }

    @Test
    void neverOpensASessionOnABackendDrainedAfterItsSelection() throws Exception {
        // The race between drain() and a handshake, made certain: the selector drains the backend it then returns.
        // drain() finds no session of it to close, so the handshake itself must see the backend draining.
        BackendSelector drainingA = new BackendSelector() {
            private int calls;

            @Override
            public synchronized Backend select(SelectionContext context) {
                if (calls++ == 0) {
                    proxy.drain(a.backend(), Duration.ZERO);
                    return a.backend();
                }
                return b.backend();
            }
        };
        start(ProxyBuilder.create().route("/ws/", r -> r.backends(a.backend(), b.backend()).backendSelector(drainingA)));

        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).as("the session, failed over from the drained backend").isEqualTo("b");
        assertThat(a.upgrades).as("handshakes the drained backend got").isEmpty();
        closeAll(open);
    }

    @Test
    void neverOpensASessionOnABackendRemovedAfterItsSelection() throws Exception {
        // The race between updateBackends() and a handshake, made certain: the selector picks A from the candidates,
        // then A leaves the list. Handshake looked A up in the new list, did not find it, and gave it a fresh state
        // as a backend outside the list (UP): the session went to the backend just removed.
        BackendSelector removingA = new BackendSelector() {
            private int calls;

            @Override
            public synchronized Backend select(SelectionContext context) {
                Backend picked = context.candidates().get(0).backend();
                if (calls++ == 0) {
                    proxy.updateBackends("/ws/", List.of(b.backend()));
                }
                return picked;
            }
        };
        start(ProxyBuilder.create().route("/ws/", r -> r.backends(a.backend(), b.backend())
                .backendSelector(removingA)));

        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).as("the session, failed over from the removed backend").isEqualTo("b");
        assertThat(a.upgrades).as("handshakes the removed backend got").isEmpty();
        assertThat(failures).as("a removal is no failure of the backend").isEmpty();
        closeAll(open);
    }

    @Test
    void failsOverAHandshakeInFlightToABackendAsItIsDrained() throws Exception {
        // drain() closed the sessions of the backend, handshakes in flight included: those clients got 503 ("session
        // closed before its upgrade"), while a handshake arriving a moment later failed over to another backend.
        RawBackend held = RawBackend.holding(RawBackend.switching(null));
        resources.add(held);
        start(ProxyBuilder.create().route("/ws/", held.backend(), b.backend()));
        try (RawHttp client = RawHttp.connect(proxy)) {
            client.send(RawHttp.Request.upgrade("/ws/x", RawHttp.host(proxy)));
            assertThat(held.nextRequest()).as("the handshake, in flight to the held backend").isNotNull();

            proxy.drain(held.backend(), Duration.ZERO);

            assertThat(client.readResponse().status()).as("failed over, not refused").isEqualTo(101);
            client.sendText("whoami");
            assertThat(client.readFrame().text()).isEqualTo("b");
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        held.release();
        assertThat(held.nextEnd(10)).as("the drained backend's connection, closed by the proxy").isIn("eof", "reset");
        assertThat(failures).as("a drain is no failure of the backend").isEmpty();
        assertThat(proxy.backendStatus("/ws/").get(0).recentFailures()).isZero();
    }

    @Test
    void drainsTheSessionsOfABackendAlreadyRemovedFromTheRoute() throws Exception {
        // A removed backend keeps its sessions open: drain() refused it (IllegalArgumentException, "expected: a
        // backend of a route"), so they could only be closed one by one, or wait for the backend to go.
        start(ProxyBuilder.create().route("/ws/", a.backend(), b.backend()));
        List<WsRecorder> open = new ArrayList<>();
        assertThat(whoServes(open)).isEqualTo("a");
        WsRecorder onA = open.remove(0);
        proxy.updateBackends("/ws/", List.of(b.backend()));

        proxy.drain(a.backend(), Duration.ZERO);

        assertThat(onA.nextClose()).isEqualTo(new WsRecorder.Closed(1001, "backend draining"));
        org.awaitility.Awaitility.await().until(() -> proxy.sessions().isEmpty());
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> proxy.drain(a.backend(), Duration.ZERO))
                .as("removed, nothing left to drain").isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(a.backend().toString());
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> proxy.drain(c.backend(), Duration.ZERO))
                .as("never a backend of the route").isInstanceOf(IllegalArgumentException.class);
        assertThat(whoServes(open)).isEqualTo("b");
        closeAll(open);
    }

    @Test
    void relaysABackendRefusalWithoutFailingOver() throws Exception {
        start(ProxyBuilder.create().route("/reject403", a.backend(), b.backend()));
        try (RawHttpExchange exchange = RawHttpExchange.upgrade(proxy.uri().getPort(), "/reject403")) {
            assertThat(exchange.statusLine()).startsWith("HTTP/1.1 403");
        }
        assertThat(a.upgrades.size() + b.upgrades.size()).as("one backend asked, no retry").isEqualTo(1);
        assertThat(failures).isEmpty();
    }
}
