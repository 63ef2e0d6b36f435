package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.URI;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.io.ManagedSelector;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.SslConnectionFactory;
import org.eclipse.jetty.websocket.api.Callback;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import dev.wsproxy.internal.WebSocketEndPoints;

/**
 * One selector per session: the backend socket of a proxied session is registered with the selector of its client's
 * socket when the proxy's server connector serves it, and with the backend client's own selectors otherwise; those
 * selectors forget a burst.
 */
class SharedSelectorTest {

    /** More than the burst that arms a selector's move (256 ready keys in one select). */
    private static final int BURST_SESSIONS = 300;

    private TestBackend backend;
    private WebSocketProxy proxy;
    private Server server;
    private Clients clients;

    private ServerConnector mount(ServerConnector connector, Clients clients) throws Exception {
        this.clients = clients;
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        server.setHandler(proxy.handler());
        server.start();
        return connector;
    }

    private void create() throws Exception {
        backend = new TestBackend("b1");
        proxy = ProxyBuilder.create().route("/ws/", r -> r.backends(backend.backend())).build();
        server = new Server(WebSocketProxy.threadPool());
    }

    @AfterEach
    void stop() throws Exception {
        try {
            if (clients != null) {
                Clients.assertNoLeaks(proxy, clients, backend);
            }
        } finally {
            if (clients != null) {
                clients.close();
            }
            if (server != null) {
                server.stop();
            }
            if (backend != null) {
                backend.close();
            }
        }
    }

    @Test
    void eachSessionsBackendSocketIsOnItsClientsSelector() throws Exception {
        create();
        // Two selectors, so that sharing the manager is not enough: each session must stay on its client's selector.
        ServerConnector connector = mount(WebSocketEndPoints.serverConnector(server, 2, new HttpConnectionFactory()),
                new Clients());
        assertSessionsShareSelectors(connector, URI.create("ws://127.0.0.1:" + connector.getLocalPort() + "/ws/chat"));
    }

    @Test
    void overTlsTooTheBackendSocketIsOnTheClientsSelector() throws Exception {
        create();
        ServerConnector connector = mount(WebSocketEndPoints.serverConnector(server, 2,
                new SslConnectionFactory(TestCertificates.LOCALHOST.server(), "http/1.1"),
                new HttpConnectionFactory()), new Clients(TestCertificates.LOCALHOST.trustingClient()));
        assertSessionsShareSelectors(connector,
                URI.create("wss://localhost:" + connector.getLocalPort() + "/ws/chat"));
    }

    /** Opens sessions one by one: each one's backend socket is on the selector of its client's socket. */
    private void assertSessionsShareSelectors(ServerConnector connector, URI uri) throws Exception {
        List<WsRecorder> sessions = new ArrayList<>();
        List<Integer> clientPorts = new ArrayList<>();
        Map<ManagedSelector, Integer> sessionsPerSelector = new LinkedHashMap<>();
        for (int i = 0; i < 6; i++) {
            WsRecorder client = clients.connect(uri);
            sessions.add(client);
            client.sendText("echo " + i);
            assertThat(client.nextText()).isEqualTo("echo " + i);
            int clientPort = ((InetSocketAddress) client.session.getLocalSocketAddress()).getPort();
            clientPorts.add(clientPort);

            Map<ManagedSelector, List<EndPoint>> keys = endPoints(connector);
            ManagedSelector clientSelector = null;
            for (Map.Entry<ManagedSelector, List<EndPoint>> entry : keys.entrySet()) {
                for (EndPoint endPoint : entry.getValue()) {
                    if (remotePort(endPoint) == clientPort) {
                        clientSelector = entry.getKey();
                    }
                }
            }
            assertThat(clientSelector).as("the client socket of session %d is the server connector's", i).isNotNull();
            // Backend sockets are not the server connector's own (graceful shutdown and statistics count clients). The
            // test's HTTP client may have opened a spare connection of its own meanwhile: only the sessions' count.
            assertThat(connector.getConnectedEndPoints()).as("the server connector's end points")
                    .noneMatch(endPoint -> remotePort(endPoint) == backend.port())
                    .filteredOn(endPoint -> clientPorts.contains(remotePort(endPoint)))
                    .hasSize(i + 1);
            sessionsPerSelector.merge(clientSelector, 1, Integer::sum);
            // Every session still open has its client socket and its backend socket on the same selector.
            for (Map.Entry<ManagedSelector, List<EndPoint>> entry : keys.entrySet()) {
                long backendSockets = entry.getValue().stream().filter(e -> remotePort(e) == backend.port()).count();
                assertThat(backendSockets).as("backend sockets on %s after %d sessions", entry.getKey(), i + 1)
                        .isEqualTo(sessionsPerSelector.getOrDefault(entry.getKey(), 0).longValue());
            }
        }
        assertThat(sessionsPerSelector).as("the sessions were spread over both selectors").hasSize(2);
        for (WsRecorder client : sessions) {
            client.session.close();
            assertThat(client.nextClose().code()).isEqualTo(1000);
        }
        // Nothing stays registered: the backend sockets left the shared selectors with their sessions.
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(endPoints(connector).values())
                .as("end points still registered").allSatisfy(endPoints -> assertThat(endPoints).isEmpty()));
    }

    @Test
    void aConnectorThatIsNotTheProxysKeepsBackendSocketsOnTheBackendClient() throws Exception {
        create();
        ServerConnector connector = mount(new ServerConnector(server), new Clients());
        URI uri = URI.create("ws://127.0.0.1:" + connector.getLocalPort() + "/ws/chat");
        WsRecorder client = clients.connect(uri);
        client.sendText("whoami");
        assertThat(client.nextText()).isEqualTo("b1");
        List<EndPoint> all = endPoints(connector).values().stream().flatMap(List::stream).toList();
        assertThat(all).as("the client socket only").hasSize(1);
        assertThat(remotePort(all.get(0))).isNotEqualTo(backend.port());
        client.session.close();
        assertThat(client.nextClose().code()).isEqualTo(1000);
    }

    /**
     * After a burst of ready sockets, a quiet selector moves its sockets to a fresh JDK selector (whose selected-key
     * table is small again), and every session goes on relaying across the move.
     */
    @Test
    void aQuietSelectorMovesItsSocketsAfterABurstAndEverySessionRelaysOn() throws Exception {
        create();
        ServerConnector connector = mount(WebSocketEndPoints.serverConnector(server, 1, new HttpConnectionFactory()),
                new Clients());
        URI uri = URI.create("ws://127.0.0.1:" + connector.getLocalPort() + "/ws/chat");
        ManagedSelector managed = connector.getSelectorManager().getBean(ManagedSelector.class);

        List<WsRecorder> sessions = new ArrayList<>();
        for (int i = 0; i < BURST_SESSIONS; i++) {
            sessions.add(clients.connect(uri));
        }

        // The burst: every client's frame arrives while the selector is held, so one select finds them all ready.
        CountDownLatch held = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        managed.submit(selector -> {
            held.countDown();
            try {
                release.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        Selector before;
        try {
            assertThat(held.await(10, TimeUnit.SECONDS)).as("selector held").isTrue();
            // Taken now: the replies to the burst alone could make the quiet selects that move it.
            before = managed.getSelector();
            List<CompletableFuture<Void>> sent = new ArrayList<>();
            for (int i = 0; i < BURST_SESSIONS; i++) {
                CompletableFuture<Void> written = new CompletableFuture<>();
                sessions.get(i).session.sendText("burst " + i, Callback.from(() -> written.complete(null),
                        written::completeExceptionally));
                sent.add(written);
            }
            CompletableFuture.allOf(sent.toArray(CompletableFuture[]::new)).get(10, TimeUnit.SECONDS);
        } finally {
            release.countDown();
        }
        for (int i = 0; i < BURST_SESSIONS; i++) {
            assertThat(sessions.get(i).nextText()).isEqualTo("burst " + i);
        }
        assertThat(managed.getMaxSelectedKeys()).as("the largest batch of ready keys").isGreaterThanOrEqualTo(256);

        // Quiet: one session echoes, a select or two per message, until the selector has moved (bounded).
        WsRecorder quiet = sessions.get(0);
        int echoes = 0;
        while (managed.getSelector() == before && echoes < 10_000) {
            quiet.sendText("quiet " + echoes);
            assertThat(quiet.nextText()).isEqualTo("quiet " + echoes);
            echoes++;
        }
        Selector after = managed.getSelector();
        assertThat(after).as("the JDK selector after %d quiet echoes", echoes).isNotSameAs(before);
        assertThat(before.isOpen()).as("the old selector closed").isFalse();
        // Both legs of every session moved, and the listening socket (the selector accepts).
        assertThat(registered(managed)).isEqualTo(2 * BURST_SESSIONS + 1);
        // Jetty's dump reads the selector field without its lock; the selector still wakes for updates after it.
        assertThat(managed.dump()).isNotEmpty();

        for (int i = 0; i < BURST_SESSIONS; i++) {
            sessions.get(i).sendText("after " + i);
        }
        for (int i = 0; i < BURST_SESSIONS; i++) {
            assertThat(sessions.get(i).nextText()).isEqualTo("after " + i);
        }
        WsRecorder late = clients.connect(uri);
        late.sendText("whoami");
        assertThat(late.nextText()).isEqualTo("b1");
        sessions.add(late);
        for (WsRecorder client : sessions) {
            client.session.close();
            assertThat(client.nextClose().code()).isEqualTo(1000);
        }
    }

    /** The valid keys of {@code managed}'s JDK selector, counted on the selector's own thread. */
    private static int registered(ManagedSelector managed) throws Exception {
        CompletableFuture<Integer> count = new CompletableFuture<>();
        managed.submit(selector -> count.complete((int) selector.keys().stream().filter(k -> k.isValid()).count()));
        return count.get(10, TimeUnit.SECONDS);
    }
    /** The end points registered with each of {@code connector}'s selectors, read on the selector's own thread. */
    private static Map<ManagedSelector, List<EndPoint>> endPoints(ServerConnector connector) throws Exception {
        Map<ManagedSelector, List<EndPoint>> all = new LinkedHashMap<>();
        for (ManagedSelector managed : connector.getSelectorManager().getBeans(ManagedSelector.class)) {
            CompletableFuture<List<EndPoint>> found = new CompletableFuture<>();
            managed.submit(selector -> {
                List<EndPoint> endPoints = new ArrayList<>();
                for (SelectionKey key : selector.keys()) {
                    if (key.isValid() && key.attachment() instanceof EndPoint endPoint) {
                        endPoints.add(endPoint);
                    }
                }
                found.complete(endPoints);
            });
            all.put(managed, found.get(10, TimeUnit.SECONDS));
        }
        return all;
    }

    private static int remotePort(EndPoint endPoint) {
        SocketAddress remote = endPoint.getRemoteSocketAddress();
        return remote instanceof InetSocketAddress inet ? inet.getPort() : -1;
    }
}
