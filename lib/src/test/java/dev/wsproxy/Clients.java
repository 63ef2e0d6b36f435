package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.client.HttpClient;
import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.client.ClientUpgradeRequest;
import org.eclipse.jetty.websocket.client.WebSocketClient;

import dev.wsproxy.internal.WebSocketProxyHandler;

/** Test clients and the leak checks every test ends with. */
final class Clients implements AutoCloseable {

    final WebSocketClient client;
    private final HttpClient http;

    Clients() throws Exception {
        this(null);
    }

    /** Clients whose {@code wss://} connections use {@code tls}. */
    Clients(SslContextFactory.Client tls) throws Exception {
        if (tls == null) {
            http = null;
            client = new WebSocketClient();
        } else {
            http = new HttpClient();
            http.setSslContextFactory(tls);
            http.start();
            client = new WebSocketClient(http);
        }
        client.setMaxTextMessageSize(64 * 1024 * 1024);
        client.setMaxBinaryMessageSize(64 * 1024 * 1024);
        client.setIdleTimeout(Duration.ofMinutes(1));
        client.start();
    }

    WsRecorder connect(URI uri, String... subprotocols) throws Exception {
        return connect(uri, Map.of(), subprotocols);
    }

    WsRecorder connect(URI uri, Map<String, String> headers, String... subprotocols) throws Exception {
        WsRecorder recorder = new WsRecorder();
        ClientUpgradeRequest request = new ClientUpgradeRequest();
        if (subprotocols.length > 0) {
            request.setSubProtocols(subprotocols);
        }
        headers.forEach(request::setHeader);
        Session session = client.connect(recorder, uri, request).get(10, TimeUnit.SECONDS);
        assertThat(session.isOpen()).isTrue();
        return recorder;
    }

    /**
     * The tear-down of a test that opens a proxy and resources of its own: checks that the proxy left nothing behind,
     * then, whatever the check found, stops the proxy and closes {@code resources}, the last opened first.
     */
    static void stopAfterLeakCheck(WebSocketProxy proxy, List<AutoCloseable> resources, TestBackend... backends)
            throws Exception {
        try {
            if (proxy != null) {
                assertNoLeaks(proxy, null, backends);
            }
        } finally {
            if (proxy != null) {
                proxy.close();
            }
            List<AutoCloseable> lastFirst = new ArrayList<>(resources);
            Collections.reverse(lastFirst);
            for (AutoCloseable resource : lastFirst) {
                resource.close();
            }
        }
    }

    /** Every session ended on every side: the client, the proxy and the backends. */
    static void assertNoLeaks(WebSocketProxy proxy, Clients clients, TestBackend... backends) {
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
            assertThat(proxy.sessions()).as("proxy sessions").isEmpty();
            assertThat(((WebSocketProxyHandler) proxy.handler()).held())
                    .as("connection slots and backend counts held").isEqualTo(new WebSocketProxyHandler.Held(0, 0, 0, 0));
            if (clients != null) {
                assertThat(clients.client.getOpenSessions()).as("client sessions").isEmpty();
            }
            for (TestBackend backend : backends) {
                assertThat(backend.openSessions()).as("backend %s sessions", backend.id).isZero();
            }
        });
    }

    /**
     * Ends a test: checks that no session is left on the proxy, the client or any {@link TestBackend} among
     * {@code resources}, then closes everything, even when the check fails. A {@code null} proxy (the test failed
     * before it built one) skips the check; {@code null} clients and resources are skipped.
     */
    static void tearDown(WebSocketProxy proxy, Clients clients, AutoCloseable... resources) throws Exception {
        try {
            if (proxy != null) {
                assertNoLeaks(proxy, clients, java.util.Arrays.stream(resources)
                        .filter(TestBackend.class::isInstance).map(TestBackend.class::cast)
                        .toArray(TestBackend[]::new));
            }
        } finally {
            if (clients != null) {
                clients.close();
            }
            if (proxy != null) {
                proxy.close();
            }
            for (AutoCloseable resource : resources) {
                if (resource != null) {
                    resource.close();
                }
            }
        }
    }

    /** Whether the IPv6 loopback address {@code ::1} can be bound here (tests over it are skipped otherwise). */
    static boolean ipv6LoopbackAvailable() {
        try (ServerSocket socket = new ServerSocket()) {
            socket.bind(new InetSocketAddress(InetAddress.getByName("::1"), 0));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /** A loopback port nothing listens on: one the system gave, then closed. */
    static int closedPort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    static URI ws(WebSocketProxy proxy, String pathQuery) {
        URI base = proxy.uri();
        return URI.create(("https".equals(base.getScheme()) ? "wss://" : "ws://") + base.getRawAuthority() + pathQuery);
    }

    @Override
    public void close() throws Exception {
        client.stop();
        if (http != null) {
            http.stop();
        }
    }
}
