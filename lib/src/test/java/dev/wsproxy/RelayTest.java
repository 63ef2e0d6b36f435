package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class RelayTest {

    private TestBackend backend;
    private WebSocketProxy proxy;
    private Clients clients;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/ws/", backend.backend()).build();
        proxy.start();
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        try {
            Clients.assertNoLeaks(proxy, clients, backend);
        } finally {
            clients.close();
            proxy.close();
            backend.close();
        }
    }

    @Test
    void echoesText() throws Exception {
        WsRecorder client = clients.connect(Clients.ws(proxy, "/ws/echo"));
        client.sendText("hello");
        assertThat(client.nextText()).isEqualTo("hello");
        client.session.close(1000, "bye", org.eclipse.jetty.websocket.api.Callback.NOOP);
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1000, "bye"));
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(1000, "bye"));
    }
}
