package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.client.ClientUpgradeRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The sticky and load-aware selectors on real backends tagged with ids: ip-hash, consistent hash, least connections. */
class StickyBalancingTest {

    private TestBackend a;
    private TestBackend b;
    private TestBackend c;
    private Clients clients;
    private WebSocketProxy proxy;
    private WebSocketProxy secondProxy;

    @BeforeEach
    void start() throws Exception {
        a = new TestBackend("a");
        b = new TestBackend("b");
        c = new TestBackend("c");
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        if (secondProxy != null) {
            WebSocketProxy second = secondProxy;
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(second.sessions()).isEmpty());
        }
        Clients.tearDown(proxy, clients, secondProxy, a, b, c);
    }

    private WebSocketProxy startProxy(BackendSelector selector) throws Exception {
        WebSocketProxy started = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .route("/ws/", a.backend(), b.backend(), c.backend())
                .backendSelector(selector)
                .build();
        started.start();
        return started;
    }

    /** Opens a session, asks which backend serves it, and keeps it open in {@code open}. */
    private String whoServes(WebSocketProxy through, Map<String, String> headers, List<WsRecorder> open)
            throws Exception {
        WsRecorder client = clients.connect(Clients.ws(through, "/ws/x"), headers);
        open.add(client);
        client.sendText("whoami");
        return client.nextText();
    }

    private static void closeAll(List<WsRecorder> open) throws Exception {
        for (WsRecorder client : open) {
            client.session.close();
        }
        for (WsRecorder client : open) {
            client.nextClose();
        }
        open.clear();
    }

    @Test
    void ipHashKeepsReconnectsOfOneClientOnOneBackend() throws Exception {
        proxy = startProxy(BackendSelector.ipHash());
        List<WsRecorder> open = new ArrayList<>();
        String first = whoServes(proxy, Map.of(), open);
        closeAll(open);
        for (int i = 0; i < 8; i++) {
            assertThat(whoServes(proxy, Map.of(), open)).as("reconnect %d", i).isEqualTo(first);
            closeAll(open);
        }
        // Even while its backend is the busiest, the client's sessions stay together.
        for (int i = 0; i < 3; i++) {
            assertThat(whoServes(proxy, Map.of(), open)).isEqualTo(first);
        }
        closeAll(open);
    }

    @Test
    void consistentHashSendsAUserToTheSameBackendThroughTwoProxyInstances() throws Exception {
        BackendSelector byUser = BackendSelector.consistentHash(HashKeys.header("X-User"));
        proxy = startProxy(byUser);
        secondProxy = startProxy(byUser);
        List<WsRecorder> open = new ArrayList<>();
        Set<String> used = new HashSet<>();
        for (int user = 0; user < 12; user++) {
            Map<String, String> headers = Map.of("X-User", "user-" + user);
            String viaFirst = whoServes(proxy, headers, open);
            String viaSecond = whoServes(secondProxy, headers, open);
            String again = whoServes(proxy, headers, open);
            assertThat(viaSecond).as("user-%d through the second proxy", user).isEqualTo(viaFirst);
            assertThat(again).as("user-%d again", user).isEqualTo(viaFirst);
            used.add(viaFirst);
            closeAll(open);
        }
        assertThat(used).as("users spread over the backends").hasSizeGreaterThan(1);
    }

    @Test
    void leastConnectionsSpreadsABurstEvenlyAndRefillsAfterUnevenCloses() throws Exception {
        proxy = startProxy(BackendSelector.leastConnections());
        // A burst: nine handshakes in flight at once.
        List<WsRecorder> recorders = new ArrayList<>();
        List<Future<Session>> handshakes = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            WsRecorder recorder = new WsRecorder();
            recorders.add(recorder);
            handshakes.add(clients.client.connect(recorder, Clients.ws(proxy, "/ws/x"), new ClientUpgradeRequest()));
        }
        for (Future<Session> handshake : handshakes) {
            handshake.get(10, TimeUnit.SECONDS);
        }
        Map<String, List<WsRecorder>> byBackend = new HashMap<>();
        for (WsRecorder recorder : recorders) {
            recorder.sendText("whoami");
            byBackend.computeIfAbsent(recorder.nextText(), id -> new ArrayList<>()).add(recorder);
        }
        assertThat(byBackend).containsOnlyKeys("a", "b", "c");
        assertThat(byBackend.values()).allSatisfy(sessions -> assertThat(sessions).hasSize(3));
        assertThat(proxy.backendStatus("/ws/")).extracting(BackendStatus::activeSessions).containsExactly(3, 3, 3);

        // Uneven closes: all of a's sessions and one of b's end. The next four sessions refill them to 3/3/3.
        List<WsRecorder> closing = new ArrayList<>(byBackend.get("a"));
        closing.add(byBackend.get("b").get(0));
        recorders.removeAll(closing);
        closeAll(closing);
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(proxy.backendStatus("/ws/"))
                .extracting(BackendStatus::activeSessions).containsExactly(0, 2, 3));
        List<WsRecorder> open = new ArrayList<>();
        List<String> refill = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            refill.add(whoServes(proxy, Map.of(), open));
        }
        assertThat(refill.subList(0, 2)).containsExactly("a", "a");
        assertThat(refill.subList(2, 4)).containsExactlyInAnyOrder("a", "b");
        assertThat(proxy.backendStatus("/ws/")).extracting(BackendStatus::activeSessions).containsExactly(3, 3, 3);

        open.addAll(recorders);
        closeAll(open);
    }
}
