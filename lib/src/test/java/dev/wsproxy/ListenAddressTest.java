package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.net.URI;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The standalone server binds where {@link ProxyBuilder#listen} says, and {@link WebSocketProxy#uri()} names that
 * address: an IPv6 loopback, written with brackets as in a URI or without. Skipped where {@code ::1} cannot be bound.
 */
class ListenAddressTest {

    private TestBackend backend;
    private Clients clients;
    private WebSocketProxy proxy;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("a");
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, clients, backend);
    }

    @ParameterizedTest
    @ValueSource(strings = {"::1", "[::1]"})
    void listensOnAnIpv6LoopbackWithOrWithoutBrackets(String host) throws Exception {
        assumeTrue(Clients.ipv6LoopbackAvailable(), "::1 cannot be bound here");
        // With brackets the bind succeeded, then start() threw building http://[[::1]]:port/ and left it running.
        proxy = ProxyBuilder.create().listen(host, 0).route("/ws/", backend.backend()).build();
        URI uri = proxy.start();
        assertThat(uri.toString()).isEqualTo("http://[::1]:" + uri.getPort() + "/");
        assertThat(proxy.uri()).isEqualTo(uri);

        WsRecorder client = clients.connect(URI.create("ws://[::1]:" + uri.getPort() + "/ws/x"));
        client.sendText("whoami");
        assertThat(client.nextText()).isEqualTo("a");
        client.session.close();
        client.nextClose();
    }
}
